//! Go panics and goroutine dumps: a function line, then a tab-indented `path:line +0x…` line. The crashing
//! goroutine is the first one printed.

use regex::Regex;
use std::sync::LazyLock;

use super::{number, Language, ParsedTrace, TextException, TextFrame};

static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\t(?P<path>.+?):(?P<line>\d+)(?: \+0x[0-9a-fA-F]+)?\s*$").expect("valid regex literal")
});
static FUNCTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:created by (?P<creator>\S+)(?: in goroutine \d+)?|(?P<func>\S.*?)\((?P<args>[^()]*)\))\s*$")
        .expect("valid regex literal")
});
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<ty>panic|fatal error)(?:: (?P<value>.*?))?(?: \[recovered\])?\s*$").expect("valid regex literal")
});
static GOROUTINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^goroutine \d+ \[[^\]]*\]:\s*$").expect("valid regex literal"));

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    let lines: Vec<&str> = text.lines().collect();
    let has_goroutine = lines.iter().any(|l| GOROUTINE.is_match(l));
    let has_location = lines.windows(2).any(|w| FUNCTION.is_match(w[0]) && LOCATION.is_match(w[1]));
    if !has_location || !(has_goroutine || lines.iter().any(|l| HEADER.is_match(l))) {
        return None;
    }
    let mut ex = TextException::default();
    let mut goroutines_seen = 0;
    let mut pending_function: Option<String> = None;
    for line in &lines {
        if ex.ty.is_none() && goroutines_seen == 0 {
            if let Some(c) = HEADER.captures(line) {
                ex.ty = Some(c["ty"].to_owned());
                ex.value = c.name("value").map(|m| m.as_str().to_owned());
                continue;
            }
        }
        if GOROUTINE.is_match(line) {
            goroutines_seen += 1;
            if goroutines_seen > 1 {
                break;
            }
            continue;
        }
        if let Some(c) = LOCATION.captures(line) {
            let function = pending_function.take();
            let (module, function) = split_function(function);
            ex.frames.push(TextFrame {
                path: Some(c["path"].to_owned()),
                line: number(&c["line"]),
                function,
                module,
                ..Default::default()
            });
            continue;
        }
        if let Some(c) = FUNCTION.captures(line) {
            pending_function = c
                .name("func")
                .map(|m| m.as_str().to_owned())
                .or_else(|| c.name("creator").map(|m| format!("created by {}", m.as_str())));
        }
    }
    Some(ParsedTrace { language: Language::Go, callee_first: true, exceptions: vec![ex] })
}

/// `github.com/acme/web/internal/pay.(*Service).Charge` → (`github.com/acme/web/internal/pay`, `(*Service).Charge`).
fn split_function(function: Option<String>) -> (Option<String>, Option<String>) {
    let Some(f) = function else {
        return (None, None);
    };
    if f.starts_with("created by ") {
        return (None, Some(f));
    }
    let last_slash = f.rfind('/').map_or(0, |i| i + 1);
    match f[last_slash..].find('.') {
        Some(dot) => (Some(f[..last_slash + dot].to_owned()), Some(f[last_slash + dot + 1..].to_owned())),
        None => (None, Some(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{corpus, parse as parse_any, Language};

    #[test]
    fn panic_with_module_cache_paths() {
        let t = parse_any(corpus::GO_PANIC).expect("parses");
        assert_eq!(t.language, Language::Go);
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("panic"));
        assert_eq!(e.value.as_deref(), Some("runtime error: index out of range [5] with length 3"));
        assert_eq!(e.frames.len(), 3);
        let f = &e.frames[0];
        assert_eq!(f.path.as_deref(), Some("/home/ci/go/pkg/mod/github.com/acme/web@v1.4.2/internal/pay/service.go"));
        assert_eq!(f.line, Some(42));
        assert_eq!(f.module.as_deref(), Some("github.com/acme/web/internal/pay"));
        assert_eq!(f.function.as_deref(), Some("(*Service).Charge"));
        assert_eq!((e.frames[1].function.as_deref(), e.frames[1].line), (Some("handler"), Some(18)));
    }

    #[test]
    fn goroutine_dump_takes_the_first_goroutine_with_windows_paths() {
        let t = parse_any(corpus::GO_GOROUTINES).expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("fatal error"));
        assert_eq!(e.frames.len(), 1);
        assert_eq!(e.frames[0].path.as_deref(), Some("C:/Users/dev/My Projects (old)/app/main.go"));
    }
}
