//! pytest's own traceback report (`--tb=long`, the default, and `--tb=short`): per frame the source with `>` at the
//! running line, then `path:line: ` (`path:line: in function` with `--tb=short`), and `E   Type: message` lines;
//! the outermost frame first, the failing one last.

use regex::Regex;
use std::sync::LazyLock;

use super::{number, Language, ParsedTrace, TextException, TextFrame};

/// `src/pkg/mod.py:400: ` or `src/pkg/mod.py:734: ValueError` (long) and `tests/test_x.py:12: in test_f` (short).
static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<path>\S+\.pyx?):(?P<line>[0-9]+):(?: in (?P<func>\S+)| (?P<ty>[A-Za-z_][\w.]*))?\s*$")
        .expect("valid regex literal")
});
/// `E       urllib3.exceptions.ProtocolError: ('Connection aborted.', …)`
static ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^E\s+(?P<ty>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure)\w*)(?::\s?(?P<value>.*))?$",
    )
    .expect("valid regex literal")
});

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    // pytest's marks, so that a plain list of `path:line:` locations is not taken for its report: the `>` line, an
    // `E ` line or the `_ _ _` rule between frames.
    let marked = text.lines().any(|l| {
        let l = l.trim_end();
        l.starts_with("> ")
            || l.starts_with("E ")
            || (l.starts_with("_ _ _") && l.chars().all(|c| c == '_' || c == ' '))
    });
    if !marked {
        return None;
    }
    let mut exception = TextException::default();
    let mut source: Option<String> = None;
    for line in text.lines().map(str::trim_end) {
        if let Some(code) = line.strip_prefix('>') {
            source = Some(code.trim().to_owned());
        } else if let Some(c) = ERROR.captures(line) {
            exception.ty = Some(c["ty"].to_owned());
            exception.value = c.name("value").map(|v| v.as_str().to_owned());
        } else if let Some(c) = LOCATION.captures(line) {
            if let Some(ty) = c.name("ty") {
                exception.ty.get_or_insert_with(|| ty.as_str().to_owned());
            }
            exception.frames.push(TextFrame {
                path: Some(c["path"].to_owned()),
                line: number(&c["line"]),
                function: c.name("func").map(|f| f.as_str().to_owned()),
                source: source.take(),
                ..Default::default()
            });
        }
    }
    (!exception.frames.is_empty()).then(|| ParsedTrace {
        language: Language::Python,
        callee_first: false,
        exceptions: vec![exception],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pytest's long report of a urllib3 failure inside a tox environment (cherrypy/cheroot#237): frames outermost
    /// first, the location after each frame's source, the last one the failing frame.
    #[test]
    fn a_long_report_from_a_tox_run() {
        let text = "            if read is False or not self._is_method_retryable(method):\n>               raise six.reraise(type(error), error, _stacktrace)\n\n_pool      = <urllib3.connectionpool.HTTPSConnectionPool object at 0x10d492820>\n\n.tox/python/lib/python3.8/site-packages/urllib3/util/retry.py:400: \n_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _\n\n    def reraise(tp, value, tb=None):\n>               raise value.with_traceback(tb)\nE               urllib3.exceptions.ProtocolError: ('Connection aborted.', OSError(\"(32, 'EPIPE')\"))\n\n.tox/python/lib/python3.8/site-packages/urllib3/packages/six.py:734: ProtocolError\n";
        let t = parse(text).expect("recognised");
        assert!(!t.callee_first);
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("urllib3.exceptions.ProtocolError"));
        let got: Vec<(Option<&str>, Option<u32>, Option<&str>)> =
            e.frames.iter().map(|f| (f.path.as_deref(), f.line, f.source.as_deref())).collect();
        assert_eq!(
            got,
            [
                (
                    Some(".tox/python/lib/python3.8/site-packages/urllib3/util/retry.py"),
                    Some(400),
                    Some("raise six.reraise(type(error), error, _stacktrace)")
                ),
                (
                    Some(".tox/python/lib/python3.8/site-packages/urllib3/packages/six.py"),
                    Some(734),
                    Some("raise value.with_traceback(tb)")
                ),
            ]
        );
    }

    /// `--tb=short`: `path:line: in function`, the failing frame last, then the `E` lines.
    #[test]
    fn a_short_report() {
        let text = "tests/test_client.py:31: in test_get\n    r = client.get(\"/\")\nsrc/app/client.py:88: in get\n    return self._send(req)\nE   KeyError: 'host'\n";
        let t = parse(text).expect("recognised");
        let e = &t.exceptions[0];
        assert_eq!((e.ty.as_deref(), e.value.as_deref()), (Some("KeyError"), Some("'host'")));
        assert_eq!(e.frames.len(), 2);
        assert_eq!(
            (e.frames[1].path.as_deref(), e.frames[1].function.as_deref()),
            (Some("src/app/client.py"), Some("get"))
        );
        // Locations alone, without pytest's marks, are left to other parsers.
        assert!(parse("src/app/client.py:88: in get\n").is_none());
    }
}
