//! Request bodies as SDKs send them: gzip, deflate, br or zstd, decoded as a stream with a hard cap, so a small
//! "bomb" that expands to gigabytes is refused after at most the cap and never held in memory.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::IngestError;

/// Most bytes a body may have as sent.
pub const MAX_RAW_BODY: usize = 20 * 1024 * 1024;
/// Most bytes a body may have once decompressed.
pub const MAX_DECODED_BODY: u64 = 100 * 1024 * 1024;
/// Most bytes one event may have.
pub const MAX_EVENT: usize = 1024 * 1024;

/// The budget's unit of account.
pub const BUDGET_UNIT: u64 = 64 * 1024;
/// What a kept event's byte costs, past its decoding and its buffer, until it is spooled: its parsed JSON and the
/// event built from it.
pub const PARSE_COST_PER_BYTE: u64 = 2;

/// Memory that intake requests may hold at once, all together: raw bodies, and what decoding them produces.
///
/// A quarter of it is kept for small requests (under [`SMALL_REQUEST`] in all, which an SDK's event always is): a burst
/// of large ones, however many, never leaves ordinary events without room.
#[derive(Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    /// Units only small requests may take.
    reserve: usize,
}

/// A request that needs no more than this in all may use the budget's reserve.
pub const SMALL_REQUEST: u64 = 256 * 1024;

/// A request's share of the budget, grown as it decodes and returned when it is dropped.
pub struct Charge {
    budget: MemoryBudget,
    permit: Option<OwnedSemaphorePermit>,
    /// Bytes the request is known to need, and bytes the permit covers (rounded up).
    needed: u64,
    covered: u64,
}

/// The budget has no room for a request now.
#[derive(Debug)]
pub struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "intake is at its memory budget; retry in a moment")
    }
}

impl std::error::Error for OverBudget {}

impl MemoryBudget {
    pub fn new(bytes: u64) -> MemoryBudget {
        let units = usize::try_from((bytes / BUDGET_UNIT).max(1)).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        MemoryBudget { units: Arc::new(Semaphore::new(units)), reserve: units / 4 }
    }

    /// Takes room for `bytes` now, or fails at once (never waits: a request waiting for memory would hold what it
    /// has).
    ///
    /// # Errors
    /// [`OverBudget`].
    pub fn charge(&self, bytes: u64) -> Result<Charge, OverBudget> {
        let mut c = Charge { budget: self.clone(), permit: None, needed: 0, covered: 0 };
        c.grow_to(bytes)?;
        Ok(c)
    }

    /// Units free now (tests, metrics).
    pub fn available_bytes(&self) -> u64 {
        self.units.available_permits() as u64 * BUDGET_UNIT
    }
}

impl Charge {
    /// Makes the charge cover `bytes`.
    ///
    /// # Errors
    /// [`OverBudget`] when the budget has no room for the difference; what was covered stays.
    pub fn grow_to(&mut self, bytes: u64) -> Result<(), OverBudget> {
        self.needed = self.needed.max(bytes);
        if bytes <= self.covered {
            return Ok(());
        }
        // At least a MiB at a time past the first unit, so a large body does not take the semaphore per read.
        let missing = (bytes - self.covered).div_ceil(BUDGET_UNIT);
        let step = if self.covered == 0 { missing } else { missing.max(16) };
        let n = u32::try_from(step).map_err(|_| OverBudget)?;
        // Past the size of a small request, the reserve is not this request's to take.
        if self.covered + step * BUDGET_UNIT > SMALL_REQUEST
            && self.budget.units.available_permits() < n as usize + self.budget.reserve
        {
            return Err(OverBudget);
        }
        let more = self.budget.units.clone().try_acquire_many_owned(n).map_err(|_| OverBudget)?;
        match &mut self.permit {
            Some(p) => p.merge(more),
            None => self.permit = Some(more),
        }
        self.covered += step * BUDGET_UNIT;
        Ok(())
    }

    /// Makes the charge cover `bytes` more than it needed so far.
    ///
    /// # Errors
    /// As [`Charge::grow_to`].
    pub fn add(&mut self, bytes: u64) -> Result<(), OverBudget> {
        self.grow_to(self.needed.saturating_add(bytes))
    }
}

/// A reader that fails once more than `limit` bytes have come through it, or once its charge on the memory budget
/// cannot grow with what it decoded.
pub struct Capped<R> {
    inner: R,
    remaining: u64,
    decoded: u64,
    charge: Option<Arc<Mutex<Charge>>>,
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
        self.decoded += n as u64;
        if let Some(charge) = &self.charge {
            let mut charge = charge.lock().unwrap_or_else(|p| p.into_inner());
            // The decoded bytes themselves (kept events, or the item being skipped); the raw body was charged before.
            charge.add(n as u64).map_err(io::Error::other)?;
        }
        Ok(n)
    }
}

/// A streaming decoder for `Content-Encoding` over `raw`, capped at [`MAX_DECODED_BODY`].
///
/// # Errors
/// [`IngestError::Malformed`] for an encoding shipwatch does not speak.
pub fn decoder<'a>(encoding: Option<&str>, raw: &'a [u8]) -> Result<Capped<Box<dyn Read + Send + 'a>>, IngestError> {
    charged_decoder(encoding, raw, None)
}

/// [`decoder`], growing `charge` on the memory budget with what it decodes (its failure ends the decoding).
///
/// # Errors
/// As [`decoder`].
pub fn charged_decoder<'a>(
    encoding: Option<&str>,
    raw: &'a [u8],
    charge: Option<Arc<Mutex<Charge>>>,
) -> Result<Capped<Box<dyn Read + Send + 'a>>, IngestError> {
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
    Ok(Capped { inner, remaining: MAX_DECODED_BODY, decoded: 0, charge })
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
    fn the_memory_budget_stops_what_the_cap_would_let_through() {
        // 24 MiB of zeros: under the cap, but more than a 16 MiB budget.
        let body = gzip(&vec![0u8; 24 * 1024 * 1024]);
        let budget = MemoryBudget::new(16 * 1024 * 1024);
        let charge = Arc::new(Mutex::new(budget.charge(body.len() as u64).expect("room for the raw body")));
        let mut d = charged_decoder(Some("gzip"), &body, Some(charge.clone())).expect("decoder");
        let err = io::copy(&mut d, &mut io::sink()).expect_err("over the budget");
        assert!(err.get_ref().is_some_and(|e| e.is::<OverBudget>()), "{err}");
        drop(d);
        drop(charge);
        assert_eq!(budget.available_bytes(), 16 * 1024 * 1024, "everything returned when the request is done");
        // Large requests stop at the reserve; small ones still find room in it.
        let mut large = budget.charge(SMALL_REQUEST + 1).expect("a large request starts");
        assert!(large.grow_to(12 * 1024 * 1024).is_ok(), "three quarters are for anyone");
        assert!(large.grow_to(13 * 1024 * 1024).is_err(), "the last quarter is not for large requests");
        let small: Vec<Charge> = (0..40).map(|_| budget.charge(BUDGET_UNIT).expect("a small request")).collect();
        drop((large, small));
        // A small body decodes within it.
        let small = gzip(b"hello");
        let charge = Arc::new(Mutex::new(budget.charge(small.len() as u64).expect("room")));
        let mut out = Vec::new();
        charged_decoder(Some("gzip"), &small, Some(charge)).expect("decoder").read_to_end(&mut out).expect("fits");
        assert_eq!(out, b"hello");
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
