//! Plain-text stack traces, as people paste them: one pure parser per language, and the conversion into an
//! [`Event`]'s exception chain. Text goes through [`prepare`] first (collector prefixes, quotes, indentation); when
//! no language parser recognises it, a generic extractor still returns the locations it can find. Parsers never
//! panic; only text without any location is an error.

mod dotnet;
mod generic;
mod go;
mod java;
mod javascript;
mod php;
pub mod prepare;
mod pytest;
mod python;
mod ruby;
mod rust;

use serde::Serialize;

use crate::events::{Exception, Frame};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Javascript,
    Go,
    Java,
    Ruby,
    Rust,
    Dotnet,
    Php,
    /// No language parser recognised the text; its frames come from the generic location extractor.
    Unknown,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Javascript => "javascript",
            Language::Go => "go",
            Language::Java => "java",
            Language::Ruby => "ruby",
            Language::Rust => "rust",
            Language::Dotnet => "dotnet",
            Language::Php => "php",
            Language::Unknown => "unknown",
        }
    }
}

/// One frame as printed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TextFrame {
    /// The path exactly as printed; `None` for frames without a file (native code, `[internal function]`).
    pub path: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub function: Option<String>,
    /// The module, package or class the language prints with the function.
    pub module: Option<String>,
    /// The source line, where the trace prints one.
    pub source: Option<String>,
}

/// One exception of a trace, with its frames in the order they were printed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TextException {
    pub ty: Option<String>,
    pub value: Option<String>,
    pub frames: Vec<TextFrame>,
}

/// A parsed trace. `exceptions` is the chain with causes first and the raised exception last; each exception's
/// frames keep the printed order, which `callee_first` describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedTrace {
    pub language: Language,
    pub callee_first: bool,
    pub exceptions: Vec<TextException>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "unrecognised stack trace: no file location (`path:line`) in the text; expected a Python, JavaScript, Go, \
         Java/Kotlin, Ruby, Rust, .NET or PHP trace, or any text with `path:line` locations. A trace that names \
         functions but no files and lines comes from a build without debug information (.NET without PDBs, Mono's \
         `in <…>:0`, minified JavaScript without source maps): there is no line to blame"
    )]
    Unrecognised,
}

type Parser = fn(&str) -> Option<ParsedTrace>;

/// Most specific first: several languages print `at …` lines, and Ruby's reversed traces open like Python's.
const PARSERS: [Parser; 9] = [
    python::parse,
    pytest::parse,
    go::parse,
    rust::parse,
    php::parse,
    dotnet::parse,
    java::parse,
    ruby::parse,
    javascript::parse,
];

/// Parses a trace in any supported language.
///
/// # Errors
/// [`ParseError::Unrecognised`] when the text holds no frame and no location at all.
pub fn parse(text: &str) -> Result<ParsedTrace, ParseError> {
    let text = prepare::prepare(text);
    let mut without_locations = None;
    for parser in PARSERS {
        let Some(t) = parser(&text) else { continue };
        if t.exceptions.iter().any(|e| e.frames.iter().any(|f| f.path.is_some())) {
            return Ok(t);
        }
        if without_locations.is_none() && t.exceptions.iter().any(|e| !e.frames.is_empty()) {
            without_locations = Some(t);
        }
    }
    generic::parse(&text).or(without_locations).ok_or(ParseError::Unrecognised)
}

impl ParsedTrace {
    /// All frames, in the order they appear in the input.
    pub fn frames_in_input_order(&self) -> Vec<&TextFrame> {
        self.exceptions.iter().flat_map(|e| e.frames.iter()).collect()
    }

    /// Each exception's frames as event frames, in the order the trace printed them.
    pub fn frame_chains(&self) -> Vec<Vec<Frame>> {
        self.exceptions.iter().map(|e| e.frames.iter().map(to_frame).collect()).collect()
    }

    /// The chain as an event's exceptions: causes first, frames caller → callee.
    pub fn to_exceptions(&self) -> Vec<Exception> {
        self.exceptions
            .iter()
            .map(|e| {
                let mut frames: Vec<Frame> = e.frames.iter().map(to_frame).collect();
                if self.callee_first {
                    frames.reverse();
                }
                Exception {
                    ty: e.ty.clone().unwrap_or_else(|| "Error".into()),
                    value: e.value.clone(),
                    module: None,
                    handled: None,
                    frames,
                }
            })
            .collect()
    }
}

fn to_frame(f: &TextFrame) -> Frame {
    Frame {
        filename: f.path.clone(),
        abs_path: f.path.clone(),
        module: f.module.clone(),
        function: f.function.clone(),
        lineno: f.line,
        colno: f.column,
        in_app: None,
        context_line: f.source.clone(),
    }
}

/// Splits `path:line[:column]` at the last numeric fields, so paths with colons (Windows drives, URLs) survive.
fn split_location(loc: &str) -> Option<(String, u32, Option<u32>)> {
    let (rest, last) = loc.rsplit_once(':')?;
    let last: u32 = last.trim().parse().ok()?;
    if let Some((path, line)) = rest.rsplit_once(':') {
        if let Ok(line) = line.parse::<u32>() {
            if !path.is_empty() {
                return Some((path.to_owned(), line, Some(last)));
            }
        }
    }
    (!rest.is_empty()).then(|| (rest.to_owned(), last, None))
}

/// Parses a line number, refusing absurd values instead of overflowing.
fn number(s: &str) -> Option<u32> {
    s.trim().parse().ok()
}

#[cfg(test)]
pub(crate) mod corpus;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_at_the_last_numbers() {
        assert_eq!(split_location("/a/b.js:10:5"), Some(("/a/b.js".into(), 10, Some(5))));
        assert_eq!(split_location("C:\\x\\b.js:10:5"), Some(("C:\\x\\b.js".into(), 10, Some(5))));
        assert_eq!(split_location("webpack:///./src/a.ts:3"), Some(("webpack:///./src/a.ts".into(), 3, None)));
        assert_eq!(split_location("/a/b.js"), None);
        assert_eq!(split_location(":3"), None);
    }

    #[test]
    fn unknown_text_is_an_error_not_a_panic() {
        for text in ["", "hello world", "Error: something\nno frames here", "\u{0}\u{1}", "at", "File \"x\""] {
            assert_eq!(parse(text), Err(ParseError::Unrecognised), "{text:?}");
        }
    }

    #[test]
    fn every_corpus_trace_parses_in_its_own_language() {
        for (name, lang, text) in corpus::TRACES {
            let t = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.language.as_str(), *lang, "{name}");
        }
    }

    /// The first half of a line, cut on a character boundary.
    fn half(line: &str) -> &str {
        let n = line.chars().count() / 2;
        &line[..line.char_indices().nth(n).map_or(line.len(), |(i, _)| i)]
    }

    /// A paste cut anywhere after its first two frames still parses, in the same language, keeping the frames
    /// printed before the cut.
    #[test]
    fn truncated_pastes_of_every_language_keep_their_frames() {
        for (name, lang, text) in corpus::TRACES {
            let full = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let frames = full.frames_in_input_order().len();
            if frames < 3 {
                continue;
            }
            let lines: Vec<&str> = text.lines().collect();
            for cut_line in 1..lines.len() {
                for cut in [
                    lines[..cut_line].join("\n"),
                    format!("{}\n{}", lines[..cut_line].join("\n"), half(lines[cut_line])),
                ] {
                    let Ok(t) = parse(&cut) else { continue };
                    // A cut that leaves only a location line (a Node header, a PHP message) has no language to tell.
                    assert!(
                        t.language.as_str() == *lang || t.language == Language::Unknown,
                        "{name} cut at line {cut_line}: {cut}"
                    );
                }
            }
            // Cut in the middle of the third frame's line: the first two survive.
            let third = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| parse(&lines[..=*i].join("\n")).is_ok_and(|t| t.frames_in_input_order().len() >= 3))
                .map(|(i, _)| i)
                .next()
                .unwrap_or_else(|| panic!("{name}: a prefix with three frames"));
            let cut = format!("{}\n{}", lines[..third].join("\n"), half(lines[third]));
            let t = parse(&cut).unwrap_or_else(|e| panic!("{name} truncated: {e}\n{cut}"));
            assert_eq!(t.language.as_str(), *lang, "{name} truncated");
            assert!(t.frames_in_input_order().len() >= 2, "{name} truncated kept {:?}", t.frames_in_input_order());
        }
    }

    /// A bounded mutation fuzzer over the corpus (the stable-toolchain stand-in for `cargo fuzz`): truncations,
    /// byte flips, spliced and duplicated lines, random bytes. No input may panic.
    #[test]
    fn fuzzed_inputs_never_panic() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let corpus: Vec<&str> = corpus::TRACES.iter().map(|(_, _, t)| *t).collect();
        for round in 0..4000 {
            let base = corpus[(next() as usize) % corpus.len()];
            let mut bytes = base.as_bytes().to_vec();
            match round % 5 {
                0 => bytes.truncate((next() as usize) % (bytes.len() + 1)),
                1 => {
                    for _ in 0..(1 + next() % 8) {
                        if !bytes.is_empty() {
                            let i = (next() as usize) % bytes.len();
                            bytes[i] = (next() % 256) as u8;
                        }
                    }
                }
                2 => {
                    let other = corpus[(next() as usize) % corpus.len()].as_bytes();
                    let cut = (next() as usize) % (bytes.len() + 1);
                    let from = (next() as usize) % (other.len() + 1);
                    bytes.truncate(cut);
                    bytes.extend_from_slice(&other[from..]);
                }
                3 => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let lines: Vec<&str> = text.lines().collect();
                    let mut out = String::new();
                    for _ in 0..lines.len() {
                        out.push_str(lines[(next() as usize) % lines.len().max(1)]);
                        out.push('\n');
                    }
                    bytes = out.into_bytes();
                }
                _ => bytes = (0..(next() % 300)).map(|_| (next() % 128) as u8).collect(),
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text);
        }
    }
}
