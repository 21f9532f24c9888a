//! Getting a trace out of what people actually paste: log-collector and logger prefixes on every line, Markdown
//! quotes and indentation, trailing padding, Windows line ends. The language parsers then see the trace itself.

use regex::Regex;
use std::sync::LazyLock;

/// Prefixes that collectors, orchestrators and loggers put in front of every line of a program's output. Each is
/// anchored at the line start and shaped tightly enough that no line of a trace itself matches it.
static PREFIXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // Kubernetes/containerd (CRI) log files: `2024-05-01T10:00:00.123456789Z stderr F `.
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)? (?:stdout|stderr) [FP] ",
        // journald / syslog: `Apr 30 20:07:15 myserver.com.br sidekiq[78538]: ` (sidekiq/sidekiq#4874 and the like).
        r"^(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \S+ [^\s:\[]+(?:\[\d+\])?: ",
        // docker compose: `web_1  | `, `api-1  | `.
        r"^[\w.-]+\s+\| ",
        // Celery and other `[timestamp: LEVEL/Process]` loggers: `[2023-01-31 09:22:12,015: WARNING/MainProcess] `.
        r"^\[\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:: [\w/.-]+)?\] ",
        // Python `logging` / Home Assistant / Rails loggers that prefix each line with a timestamp and a level:
        // `2024-05-01 10:00:00.123 ERROR (MainThread) [homeassistant.core] `.
        r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\s+(?:\[?(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\]?\s+)?(?:\([\w-]+\)\s+)?(?:\[[^\]]+\]\s+)?",
        // Android logcat: `11-20 14:03:12.345  4242  4242 E AndroidRuntime: ` and `E/AndroidRuntime( 4242): `.
        r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+ [VDIWEF] [^:]+: ",
        r"^[VDIWEF]/[^(:]+\(\s*\d+\): ",
        // A Markdown quote: `> `.
        r"^>+ ?",
    ]
    .iter()
    .map(|p| Regex::new(p).expect("valid regex literal"))
    .collect()
});

/// The trace text with line ends normalised, every line's collector prefix and trailing padding removed, and the
/// indentation that all lines share taken away.
pub fn prepare(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let text = unescape_html(&text);
    let lines: Vec<String> = text.lines().map(strip_prefixes).collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out = String::with_capacity(text.len());
    for l in &lines {
        out.push_str(l.get(indent..).unwrap_or(l.trim_start_matches(' ')));
        out.push('\n');
    }
    out
}

/// `<span …>` and `</span>`, as a trace copied from a web page's source keeps them.
static SPAN_TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"</?span\b[^>]*>").expect("valid regex literal"));

/// A trace copied from a page's HTML (github-education-resources/classroom#2108: `<span class="l">…rb:22:in
/// `call&#39;</span>`) back into text: its `<span>` tags removed and the entities HTML escapes decoded. Only when
/// the text has such a tag or entity; `<main>` or `<init>` in a plain trace stay as they are.
fn unescape_html(text: &str) -> std::borrow::Cow<'_, str> {
    const ENTITIES: [(&str, &str); 6] =
        [("&#39;", "'"), ("&#x27;", "'"), ("&quot;", "\""), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")];
    if !SPAN_TAG.is_match(text) && !ENTITIES.iter().any(|(e, _)| text.contains(e)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = SPAN_TAG.replace_all(text, "").into_owned();
    // `&amp;` last, so that `&amp;lt;` becomes `&lt;` and not `<`.
    for (entity, plain) in ENTITIES {
        out = out.replace(entity, plain);
    }
    std::borrow::Cow::Owned(out)
}

fn strip_prefixes(line: &str) -> String {
    let mut line = line.trim_end();
    // Collectors nest (a journald line quoting a logger's line): strip up to three layers.
    for _ in 0..3 {
        let Some(m) = PREFIXES.iter().find_map(|p| p.find(line).filter(|m| m.end() > 0)) else { break };
        line = &line[m.end()..];
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// github-education-resources/classroom#2108: a Rails backtrace copied from an error page's HTML.
    #[test]
    fn a_trace_copied_from_html_is_text_again() {
        let html = "<span class=\"l\">/app/vendor/bundle/ruby/2.4.0/gems/rack-2.0.7/lib/rack/runtime.rb:22:in `call&#39;</span>\n";
        assert_eq!(prepare(html), "/app/vendor/bundle/ruby/2.4.0/gems/rack-2.0.7/lib/rack/runtime.rb:22:in `call'\n");
        let t = crate::stacktrace::parse(html).expect("parses");
        assert_eq!(t.language, crate::stacktrace::Language::Ruby);
        assert_eq!(t.exceptions[0].frames[0].function.as_deref(), Some("call"));
        // A plain trace's `<main>` is no tag.
        let ruby = "script/rails:7:in `<main>'\n";
        assert_eq!(prepare(ruby), ruby);
    }

    #[test]
    fn collector_prefixes_are_removed() {
        let cases = [
            // journald, as in sidekiq/sidekiq#4874.
            (
                "Apr 30 20:07:15 myserver.com.br sidekiq[78538]: /srv/gems/sidekiq-6.2.1/lib/sidekiq/util.rb:52:in `x'",
                "/srv/gems/sidekiq-6.2.1/lib/sidekiq/util.rb:52:in `x'",
            ),
            // Kubernetes container logs (CRI format).
            (
                "2024-05-01T10:00:00.123456789Z stderr F   File \"/app/x.py\", line 3, in f",
                "  File \"/app/x.py\", line 3, in f",
            ),
            // docker compose.
            ("web_1  |   File \"/app/x.py\", line 3, in f", "  File \"/app/x.py\", line 3, in f"),
            // Celery's worker log, as in urllib3/urllib3#2908.
            (
                "[2023-01-31 09:22:12,015: WARNING/MainProcess]   File \"/usr/lib/x.py\", line 1, in f",
                "  File \"/usr/lib/x.py\", line 1, in f",
            ),
            // Home Assistant's log header.
            ("2024-05-01 10:00:00.123 ERROR (MainThread) [homeassistant.core] Error doing job", "Error doing job"),
            ("> \tat com.acme.A.b(A.java:3)", "\tat com.acme.A.b(A.java:3)"),
            ("    at f (/app/a.js:1:2)   ", "    at f (/app/a.js:1:2)"),
        ];
        for (line, want) in cases {
            assert_eq!(strip_prefixes(line), want, "{line}");
        }
    }

    #[test]
    fn trace_lines_are_left_alone() {
        for line in [
            "  File \"/app/x.py\", line 3, in f",
            "\tat com.acme.A.b(A.java:3)",
            "goroutine 1 [running]:",
            "main.main()",
            "#0 /var/www/a.php(3): f()",
            "  | ExceptionGroup: two (2 sub-exceptions)",
            "app.rb:2:in `charge': card declined (RuntimeError)",
        ] {
            assert_eq!(strip_prefixes(line), line);
        }
    }

    #[test]
    fn shared_indentation_is_removed() {
        assert_eq!(prepare("    Traceback:\n      File x\n    Err: y\n"), "Traceback:\n  File x\nErr: y\n");
    }
}
