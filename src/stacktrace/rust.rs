//! Rust panics: the current (`panicked at path:line:col:` then the message) and the old (`panicked at 'msg',
//! path:line:col`) formats, with `RUST_BACKTRACE=1` or `full` backtraces.

use regex::Regex;
use std::sync::LazyLock;

use super::{split_location, Language, ParsedTrace, TextException, TextFrame};

static PANIC_NEW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^thread '[^']*' panicked at (?P<loc>.+:[0-9]+:[0-9]+):\s*$").expect("valid regex literal")
});
static PANIC_OLD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^thread '[^']*' panicked at '(?P<msg>.*)', (?P<loc>.+:[0-9]+(?::[0-9]+)?)\s*$")
        .expect("valid regex literal")
});
static FUNCTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:[0-9]+:\s+)?(?:0x[0-9a-f]+ - )?(?P<func>[^\s].*?)\s*$").expect("valid regex literal")
});
static AT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s+at (?P<loc>.+:[0-9]+(?::[0-9]+)?)\s*$").expect("valid regex literal"));
static INDEXED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*[0-9]+:\s").expect("valid regex literal"));
static HASH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"::h[0-9a-f]{16}$").expect("valid regex literal"));

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| PANIC_NEW.is_match(l) || PANIC_OLD.is_match(l)) else {
        return backtrace_alone(&lines);
    };
    let mut ex = TextException { ty: Some("panic".into()), ..Default::default() };
    let mut panic_location = None;
    let mut rest = start + 1;
    if let Some(c) = PANIC_OLD.captures(lines[start]) {
        ex.value = Some(c["msg"].to_owned());
        panic_location = split_location(&c["loc"]);
    } else if let Some(c) = PANIC_NEW.captures(lines[start]) {
        panic_location = split_location(&c["loc"]);
        // The message runs until the note or the backtrace.
        let mut message = Vec::new();
        while rest < lines.len() && !lines[rest].starts_with("note: ") && !lines[rest].starts_with("stack backtrace:") {
            message.push(lines[rest]);
            rest += 1;
        }
        ex.value = Some(message.join("\n").trim().to_owned()).filter(|m| !m.is_empty());
    }
    ex.frames = frames(&lines[rest..]);
    if ex.frames.is_empty() {
        if let Some((path, line, column)) = panic_location {
            ex.frames.push(TextFrame { path: Some(path), line: Some(line), column, ..Default::default() });
        }
    }
    Some(ParsedTrace { language: Language::Rust, callee_first: true, exceptions: vec![ex] })
}

/// A backtrace pasted without its `panicked at` line (cut at the top, as long ones are in issues): numbered Rust
/// paths (`64: 0x7fad… - tokio::runtime::…`) with `at path.rs:line` under them.
fn backtrace_alone(lines: &[&str]) -> Option<ParsedTrace> {
    let numbered = lines.iter().any(|l| INDEXED.is_match(l) && l.contains("::"));
    let rust_file = lines.iter().any(|l| AT.captures(l).is_some_and(|c| c["loc"].contains(".rs:")));
    if !(numbered && rust_file) {
        return None;
    }
    let ex = TextException { frames: frames(lines), ..Default::default() };
    (!ex.frames.is_empty()).then(|| ParsedTrace { language: Language::Rust, callee_first: true, exceptions: vec![ex] })
}

/// The frames of a backtrace: each `at` location with the function numbered above it.
fn frames(lines: &[&str]) -> Vec<TextFrame> {
    let mut out = Vec::new();
    let mut function: Option<String> = None;
    for line in lines {
        if let Some(c) = AT.captures(line) {
            if let Some((path, line_no, column)) = split_location(&c["loc"]) {
                let (module, func) = split_function(function.as_deref());
                out.push(TextFrame {
                    path: Some(path),
                    line: Some(line_no),
                    column,
                    function: func,
                    module,
                    source: None,
                });
            }
            continue;
        }
        if INDEXED.is_match(line) {
            if let Some(c) = FUNCTION.captures(line) {
                function = Some(HASH.replace(&c["func"], "").into_owned());
            }
        }
    }
    out
}

/// `shop::pay::total::average` → (`shop::pay::total`, `average`).
fn split_function(f: Option<&str>) -> (Option<String>, Option<String>) {
    match f {
        Some(f) => match f.rsplit_once("::") {
            Some((m, name)) if !m.contains('<') => (Some(m.to_owned()), Some(name.to_owned())),
            _ => (None, Some(f.to_owned())),
        },
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{corpus, parse as parse_any, Language};

    #[test]
    fn new_format_with_backtrace() {
        let t = parse_any(corpus::RUST_NEW).expect("parses");
        assert_eq!(t.language, Language::Rust);
        let e = &t.exceptions[0];
        assert_eq!(e.value.as_deref(), Some("attempt to divide by zero"));
        assert_eq!(e.frames.len(), 5);
        let f = &e.frames[2];
        assert_eq!((f.path.as_deref(), f.line, f.column), (Some("./src/pay/total.rs"), Some(42), Some(18)));
        assert_eq!((f.module.as_deref(), f.function.as_deref()), (Some("shop::pay::total"), Some("average")));
    }

    /// The end of a long backtrace pasted without its `panicked at` line: a Nix build's vendored tokio
    /// (TraceMachina/nativelink#1566) and a Windows one with both separators (eigenwallet/core#126).
    #[test]
    fn a_backtrace_cut_at_the_top() {
        let nix = "  64:     0x7fad5d79816e - tokio::runtime::scheduler::multi_thread::worker::Context::run::hb44de53becffbac0\n                               at /nix/store/eeee-vendor-cargo-deps/c19b/tokio-1.43.0/src/runtime/scheduler/multi_thread/worker.rs:546:24\n  66:     0x7fad5d79816e - tokio::runtime::context::scoped::Scoped<T>::set::h4e2ee950cb5968c3\n                               at /nix/store/eeee-vendor-cargo-deps/c19b/tokio-1.43.0/src/runtime/context/scoped.rs:40:9\n";
        let t = parse_any(nix).expect("parses");
        assert_eq!(t.language, Language::Rust);
        let f = &t.exceptions[0].frames;
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].line, f[0].column, f[0].function.as_deref()), (Some(546), Some(24), Some("run")));
        let windows = "             at C:\\Users\\me\\.cargo\\registry\\src\\index.crates.io-6f17d22bba15001f\\tokio-1.38.1\\src\\runtime\\task\\core.rs:317\n  94: tokio::runtime::task::harness::poll_future::closure$0<tokio::runtime::blocking::task::BlockingTask>\n             at C:\\Users\\me\\.cargo\\registry\\src\\index.crates.io-6f17d22bba15001f\\tokio-1.38.1\\src\\runtime\\task\\harness.rs:485\n";
        let t = parse_any(windows).expect("parses");
        assert_eq!(t.language, Language::Rust);
        assert_eq!(t.exceptions[0].frames.len(), 2);
        assert_eq!(t.exceptions[0].frames[1].line, Some(485));
    }

    #[test]
    fn old_format_without_backtrace_uses_the_panic_location() {
        let t = parse_any(corpus::RUST_OLD).expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.value.as_deref(), Some("called `Option::unwrap()` on a `None` value"));
        assert_eq!(e.frames.len(), 1);
        assert_eq!(
            e.frames[0].path.as_deref(),
            Some("/home/ci/.cargo/registry/src/github.com-1ecc6299db9ec823/serde_json-1.0.100/src/de.rs")
        );
        assert_eq!((e.frames[0].line, e.frames[0].column), (Some(12), Some(5)));
    }

    #[test]
    fn full_backtrace_on_windows_strips_hashes() {
        let t = parse_any(corpus::RUST_FULL).expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.value.as_deref(), Some("boom"));
        assert_eq!(e.frames.len(), 2);
        assert_eq!(e.frames[1].path.as_deref(), Some(r"C:\Users\Dev Team\app (v2)\src\main.rs"));
        assert_eq!((e.frames[1].line, e.frames[1].column), (Some(3), None));
        assert_eq!(e.frames[1].function.as_deref(), Some("main"));
        assert_eq!(e.frames[1].module.as_deref(), Some("app"));
    }
}
