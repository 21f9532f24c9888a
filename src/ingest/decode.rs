//! Request bodies as SDKs send them: gzip, deflate, br or zstd, decoded as a stream with a hard cap, so a small
//! "bomb" that expands to gigabytes is refused after at most the cap and never held in memory.

use std::io::{self, Read};

use super::IngestError;

/// Most bytes a body may have as sent.
pub const MAX_RAW_BODY: usize = 20 * 1024 * 1024;
/// Most bytes a body may have once decompressed.
pub const MAX_DECODED_BODY: u64 = 100 * 1024 * 1024;
/// Most bytes one event may have.
pub const MAX_EVENT: usize = 1024 * 1024;

/// A reader that fails once more than `limit` bytes have come through it.
pub struct Capped<R> {
    inner: R,
    remaining: u64,
}

/// The error `Capped` reports; recognised by [`IngestError::from_io`].
#[derive(Debug)]
pub struct OverCap;

impl std::fmt::Display for OverCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed body is larger than {} MiB", MAX_DECODED_BODY / 1024 / 1024)
    }
}

impl std::error::Error for OverCap {}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // One byte more than allowed tells a body that ends exactly at the cap from one that goes on.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(OverCap)),
            };
        }
        let max = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A streaming decoder for `Content-Encoding` over `raw`, capped at [`MAX_DECODED_BODY`].
///
/// # Errors
/// [`IngestError::Malformed`] for an encoding shipwatch does not speak.
pub fn decoder<'a>(encoding: Option<&str>, raw: &'a [u8]) -> Result<Capped<Box<dyn Read + Send + 'a>>, IngestError> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase()).unwrap_or_default();
    let inner: Box<dyn Read + Send + 'a> = match encoding.as_str() {
        "" | "identity" => Box::new(raw),
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        // "deflate" is zlib-wrapped by the standard, raw deflate by some clients; the zlib header tells which.
        "deflate" if raw.len() >= 2 && raw[0] & 0x0f == 8 && (u16::from(raw[0]) << 8 | u16::from(raw[1])) % 31 == 0 => {
            Box::new(flate2::read::ZlibDecoder::new(raw))
        }
        "deflate" => Box::new(flate2::read::DeflateDecoder::new(raw)),
        "br" => Box::new(brotli::Decompressor::new(raw, 8192)),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::with_buffer(raw)
                .map_err(|e| IngestError::Malformed(format!("could not start the zstd decoder: {e}")))?,
        ),
        other => {
            return Err(IngestError::Malformed(format!(
                "unsupported Content-Encoding `{other}`: use gzip, deflate, br, zstd or none"
            )))
        }
    };
    Ok(Capped { inner, remaining: MAX_DECODED_BODY })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn decodes_each_encoding() {
        let text = b"hello envelope".repeat(100);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&text).expect("write");
        let zlib = zlib.finish().expect("finish");
        let mut raw_deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw_deflate.write_all(&text).expect("write");
        let raw_deflate = raw_deflate.finish().expect("finish");
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &text[..], &mut br, &brotli::enc::BrotliEncoderParams::default()).expect("br");
        let zstd = zstd::encode_all(&text[..], 3).expect("zstd");
        for (enc, body) in [
            ("gzip", gzip(&text)),
            ("deflate", zlib),
            ("deflate", raw_deflate),
            ("br", br),
            ("zstd", zstd),
            ("identity", text.clone()),
        ] {
            let mut out = Vec::new();
            decoder(Some(enc), &body).expect("decoder").read_to_end(&mut out).expect(enc);
            assert_eq!(out, text, "{enc}");
        }
        assert!(matches!(decoder(Some("lzma"), b""), Err(IngestError::Malformed(m)) if m.contains("lzma")));
    }

    #[test]
    fn the_cap_stops_a_bomb() {
        // 1 MiB of zeros, compressed once and repeated: a valid multi-member gzip stream of 128 MiB.
        let member = gzip(&vec![0u8; 1024 * 1024]);
        let bomb: Vec<u8> = member.iter().copied().cycle().take(member.len() * 128).collect();
        let mut d = decoder(Some("gzip"), &bomb).expect("decoder");
        let err = io::copy(&mut d, &mut io::sink()).expect_err("capped");
        assert!(err.get_ref().is_some_and(|e| e.is::<OverCap>()), "{err}");
    }
}
