//! The fallback when no language parser recognises a text: every `path:line`-shaped location it can find, in the
//! order printed, so a paste in an unknown format still yields frames to map instead of an error.

use regex::Regex;
use std::sync::LazyLock;

use super::{number, Language, ParsedTrace, TextException, TextFrame};

/// A file path with an extension, then its line in one of the common spellings: `path:12[:5]`, `path(12)`,
/// `path", line 12`, `path line 12`, `path on line 12`, and Sentry's copied stack `path in func at line 12`.
static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?P<path>(?:[A-Za-z]:)?[\w.@~+\\/$-]*[\w$-]\.[A-Za-z][\w]{0,9})(?::(?P<a>[0-9]+)(?::(?P<col>[0-9]+))?|\((?P<b>[0-9]+)(?:,[0-9]+)?\)|"?,? (?:on )?line (?P<c>[0-9]+)| in (?P<func>\S+) at line (?P<d>[0-9]+))"#,
    )
    .expect("valid regex literal")
});

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    let mut frames = Vec::new();
    for line in text.lines() {
        for c in LOCATION.captures_iter(line) {
            let path = &c["path"];
            // Host names and version numbers look like files (`example.com:443`, `v1.2:3`): require a directory or a
            // plausible source extension.
            let ext = path.rsplit('.').next().unwrap_or_default();
            if !(path.contains('/') || path.contains('\\') || SOURCE_EXTENSIONS.contains(&ext)) {
                continue;
            }
            let line_no = c.name("a").or(c.name("b")).or(c.name("c")).or(c.name("d")).and_then(|m| number(m.as_str()));
            frames.push(TextFrame {
                path: Some(path.to_owned()),
                line: line_no,
                column: c.name("col").and_then(|m| number(m.as_str())),
                function: c.name("func").map(|m| m.as_str().to_owned()),
                ..Default::default()
            });
        }
    }
    (!frames.is_empty()).then(|| ParsedTrace {
        language: Language::Unknown,
        // Most runtimes print the crash first; only Python prints it last, and Python is recognised by its parser.
        callee_first: true,
        exceptions: vec![TextException { frames, ..Default::default() }],
    })
}

const SOURCE_EXTENSIONS: &[&str] = &[
    "py", "pyx", "js", "mjs", "cjs", "ts", "tsx", "jsx", "go", "java", "kt", "kts", "scala", "groovy", "rb", "rs",
    "cs", "vb", "fs", "php", "c", "cc", "cpp", "h", "hpp", "m", "mm", "swift", "ex", "exs", "erl", "hs", "lua", "pl",
    "pm", "dart", "clj", "vue", "svelte",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_in_an_unknown_format_are_found() {
        // Elixir's `(app 0.1.0) lib/app/worker.ex:12: App.Worker.run/1`, Lua's `app/main.lua:7: in function`, a
        // compiler-style `src/x.c(12)`, and a host:port that must not count.
        let t = parse(
            "** (RuntimeError) boom\n    (app 0.1.0) lib/app/worker.ex:12: App.Worker.run/1\nstack traceback:\n\tapp/main.lua:7: in function 'f'\nsrc\\x.c(12): error\nconnect to example.com:443 failed\n",
        )
        .expect("frames");
        let got: Vec<(Option<&str>, Option<u32>)> =
            t.exceptions[0].frames.iter().map(|f| (f.path.as_deref(), f.line)).collect();
        assert_eq!(
            got,
            [(Some("lib/app/worker.ex"), Some(12)), (Some("app/main.lua"), Some(7)), (Some("src\\x.c"), Some(12))]
        );
    }

    /// A stack copied from Sentry's issue page (HENNGE/aiodynamo#44), newest first.
    #[test]
    fn a_stack_copied_from_sentrys_page() {
        let t = parse("aiohttp/connector.py in _wrap_create_connection at line 943\naiohttp/client.py in _request at line 480\naiodynamo/client.py in get_item at line 124\n").expect("frames");
        let f = &t.exceptions[0].frames;
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[0].path.as_deref(), f[0].line, f[0].function.as_deref()),
            (Some("aiohttp/connector.py"), Some(943), Some("_wrap_create_connection"))
        );
        assert!(t.callee_first);
    }

    #[test]
    fn text_without_a_location_is_not_a_trace() {
        assert!(parse("Error: something went wrong\nplease help").is_none());
        assert!(parse("listening on 127.0.0.1:8080").is_none());
    }
}
