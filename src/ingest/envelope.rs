//! Sentry envelopes, read as a stream: a header line, then items (`{"type": …, "length"?: …}` and a payload of that
//! length, or up to the next newline). Only event payloads are kept; everything else is counted and skipped
//! without being held in memory.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read as _};

use super::decode::MAX_EVENT;
use super::IngestError;

/// Most bytes of an envelope or item header line.
const MAX_HEADER_LINE: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct Envelope {
    pub header: serde_json::Map<String, serde_json::Value>,
    /// Payloads of `event` items.
    pub events: Vec<Vec<u8>>,
    /// How many items of each other type arrived.
    pub skipped: BTreeMap<String, i64>,
}

/// Reads an envelope from `r`, refusing event items over 1 MiB.
///
/// # Errors
/// [`IngestError::Malformed`] for text that is not an envelope; [`IngestError::TooLarge`] for oversized items or a
/// body over the decoded cap.
/// Only the envelope header (its first line, at most 64 KiB once decoded): what a request that carries its key
/// nowhere else is authenticated by, before anything more of the body is decoded.
///
/// # Errors
/// When the first line is missing, too long or not a JSON object.
pub fn read_header<R: BufRead>(mut r: R) -> Result<serde_json::Map<String, serde_json::Value>, IngestError> {
    let first = read_line(&mut r, MAX_HEADER_LINE, "envelope header")?
        .ok_or_else(|| IngestError::Malformed("empty envelope".into()))?;
    parse_object(&first, "envelope header")
}

pub fn read<R: BufRead>(r: R) -> Result<Envelope, IngestError> {
    read_charged(r, &mut |_| Ok(()))
}

/// [`read`], telling `reserve` the size of each event item before its buffer is allocated (the memory budget).
///
/// # Errors
/// As [`read`], and whatever `reserve` returns.
pub fn read_charged<R: BufRead>(
    mut r: R,
    reserve: &mut dyn FnMut(u64) -> Result<(), IngestError>,
) -> Result<Envelope, IngestError> {
    let mut env = Envelope::default();
    let first = read_line(&mut r, MAX_HEADER_LINE, "envelope header")?
        .ok_or_else(|| IngestError::Malformed("empty envelope".into()))?;
    env.header = parse_object(&first, "envelope header")?;
    loop {
        let Some(line) = read_line(&mut r, MAX_HEADER_LINE, "item header")? else { break };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let header = parse_object(&line, "item header")?;
        let ty = header.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
        if ty.is_empty() {
            return Err(IngestError::Malformed("envelope item header has no `type`".into()));
        }
        let length = match header.get("length") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| IngestError::Malformed("item `length` must be a number".into()))?),
        };
        let is_event = ty == "event";
        if is_event && length.is_some_and(|n| n > MAX_EVENT as u64) {
            return Err(IngestError::TooLarge("an event item is larger than 1 MiB".into()));
        }
        match (is_event, length) {
            (true, Some(n)) => {
                reserve(n)?;
                let mut payload = vec![0u8; n as usize];
                r.read_exact(&mut payload).map_err(|e| eof_or(e, "event item is shorter than its `length`"))?;
                skip_newline(&mut r)?;
                env.events.push(payload);
            }
            (true, None) => {
                let payload = read_line(&mut r, MAX_EVENT, "event item")?.unwrap_or_default();
                env.events.push(payload);
            }
            (false, Some(n)) => {
                let copied = io::copy(&mut r.by_ref().take(n), &mut io::sink()).map_err(IngestError::from_io)?;
                if copied < n {
                    return Err(IngestError::Malformed(format!("`{ty}` item is shorter than its `length`")));
                }
                skip_newline(&mut r)?;
                *env.skipped.entry(ty).or_default() += 1;
            }
            (false, None) => {
                skip_line(&mut r)?;
                *env.skipped.entry(ty).or_default() += 1;
            }
        }
    }
    Ok(env)
}

fn parse_object(line: &[u8], what: &str) -> Result<serde_json::Map<String, serde_json::Value>, IngestError> {
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(IngestError::Malformed(format!("{what} is not a JSON object"))),
        Err(e) => Err(IngestError::Malformed(format!("{what} is not valid JSON: {e}"))),
    }
}

fn eof_or(e: io::Error, message: &str) -> IngestError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        IngestError::Malformed(message.into())
    } else {
        IngestError::from_io(e)
    }
}

/// Reads up to and without the next `\n`; `None` at the end of input. Over `max` bytes is [`IngestError::TooLarge`].
fn read_line<R: BufRead>(r: &mut R, max: usize, what: &str) -> Result<Option<Vec<u8>>, IngestError> {
    let mut out = Vec::new();
    loop {
        let buf = r.fill_buf().map_err(IngestError::from_io)?;
        if buf.is_empty() {
            return Ok((!out.is_empty()).then_some(out));
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        if out.len() + chunk.len() > max {
            return Err(IngestError::TooLarge(format!("{what} is larger than {} KiB", max / 1024)));
        }
        out.extend_from_slice(chunk);
        let used = chunk.len() + usize::from(found);
        r.consume(used);
        if found {
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            return Ok(Some(out));
        }
    }
}

/// Discards everything up to and including the next `\n`, whatever its length (the decoded cap still applies).
fn skip_line<R: BufRead>(r: &mut R) -> Result<(), IngestError> {
    loop {
        let buf = r.fill_buf().map_err(IngestError::from_io)?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

/// After a payload of known length: an optional `\n` (or `\r\n`).
fn skip_newline<R: BufRead>(r: &mut R) -> Result<(), IngestError> {
    let buf = r.fill_buf().map_err(IngestError::from_io)?;
    match buf.first() {
        Some(b'\n') => r.consume(1),
        Some(b'\r') if buf.get(1) == Some(&b'\n') => r.consume(2),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Envelope, IngestError> {
        read(io::BufReader::new(s))
    }

    #[test]
    fn items_with_and_without_length_and_trailing_newline() {
        let body = b"{\"event_id\":\"abc\"}\n{\"type\":\"event\",\"length\":13}\n{\"message\":1}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n{\"type\":\"attachment\",\"length\":5}\na\nb\nc\n{\"type\":\"event\"}\n{\"x\":2}";
        let env = parse(body).expect("parses");
        assert_eq!(env.header.get("event_id").and_then(|v| v.as_str()), Some("abc"));
        assert_eq!(env.events, vec![b"{\"message\":1}".to_vec(), b"{\"x\":2}".to_vec()]);
        assert_eq!(env.skipped.get("session"), Some(&1));
        assert_eq!(env.skipped.get("attachment"), Some(&1), "binary payload with newlines skipped by length");
    }

    #[test]
    fn header_only_envelope_is_fine() {
        let env = parse(b"{}\n").expect("parses");
        assert!(env.events.is_empty());
        let env = parse(b"{}").expect("parses without newline");
        assert!(env.events.is_empty());
    }

    #[test]
    fn refusals() {
        assert!(matches!(parse(b""), Err(IngestError::Malformed(_))));
        assert!(matches!(parse(b"not json\n"), Err(IngestError::Malformed(m)) if m.contains("envelope header")));
        assert!(matches!(parse(b"{}\n[1]\n"), Err(IngestError::Malformed(m)) if m.contains("item header")));
        assert!(matches!(parse(b"{}\n{\"length\":2}\nab\n"), Err(IngestError::Malformed(m)) if m.contains("type")));
        assert!(
            matches!(parse(b"{}\n{\"type\":\"event\",\"length\":50}\n{}\n"), Err(IngestError::Malformed(m)) if m.contains("shorter"))
        );
        let big = format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n", 2 * 1024 * 1024);
        assert!(matches!(parse(big.as_bytes()), Err(IngestError::TooLarge(_))));
        let mut unbounded = b"{}\n{\"type\":\"event\"}\n".to_vec();
        unbounded.extend(std::iter::repeat_n(b'x', 1024 * 1024 + 10));
        assert!(matches!(parse(&unbounded), Err(IngestError::TooLarge(_))));
    }
}
