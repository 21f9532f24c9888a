//! JavaScript stacks in V8's format (Node.js, Chrome, Edge, Deno): `at fn (path:line:col)` and `at path:line:col`.

use regex::Regex;
use std::sync::LazyLock;

use super::{split_location, Language, ParsedTrace, TextException, TextFrame};

static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*at (?:(?P<func>.+?) \((?P<loc>.+)\)|(?P<bare>.+))\s*$").expect("valid regex literal")
});
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:Uncaught )?(?:\[?(?P<ty>[A-Za-z_$][\w$.]*)\]?)(?::\s?(?P<value>.*))?$")
        .expect("valid regex literal")
});

/// A location alone on its line, in parentheses: the second half of a frame a terminal wrapped.
static WRAPPED_LOCATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*\(\S+:[0-9]+(?::[0-9]+)?\)\s*$").expect("valid regex literal"));

/// Frames whose location went to the next line (knex/knex#6302, from wrangler's terminal: `at Client_PG.connect`,
/// then `(node_modules/knex/lib/dialects/postgres/index.js:82:24)`) joined back into one line each.
fn join_wrapped(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let wraps = WRAPPED_LOCATION.is_match(line)
            && out.last().is_some_and(|prev| prev.trim_start().starts_with("at ") && !prev.trim_end().ends_with(')'));
        match out.last_mut() {
            Some(prev) if wraps => {
                prev.push(' ');
                prev.push_str(line.trim());
            }
            _ => out.push(line.to_owned()),
        }
    }
    out
}

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    let joined = join_wrapped(text);
    let lines: Vec<&str> = joined.iter().map(String::as_str).collect();
    let first = lines.iter().position(|l| FRAME.captures(l).is_some_and(|c| frame(&c).is_some()))?;
    let mut ex = TextException::default();
    // The message is the nearest non-empty line above the first frame (Node prints a source excerpt above it).
    if let Some(header) = lines[..first].iter().rev().map(|l| l.trim()).find(|l| !l.is_empty()) {
        if let Some(c) = HEADER.captures(header) {
            ex.ty = Some(c["ty"].to_owned());
            ex.value = c.name("value").map(|m| m.as_str().to_owned());
        }
    }
    for line in &lines[first..] {
        if let Some(c) = FRAME.captures(line) {
            if let Some(f) = frame(&c) {
                ex.frames.push(f);
            } else if let Some(func) = c.name("func") {
                // `at async Promise.all (index 0)`, `at native`: a frame without a file.
                ex.frames.push(TextFrame { function: Some(func.as_str().to_owned()), ..Default::default() });
            }
        }
    }
    Some(ParsedTrace { language: Language::Javascript, callee_first: true, exceptions: vec![ex] })
}

fn frame(c: &regex::Captures<'_>) -> Option<TextFrame> {
    let (function, loc) = match (c.name("func"), c.name("loc")) {
        (Some(f), Some(l)) => (Some(f.as_str()), l.as_str()),
        _ => {
            let bare = c.name("bare")?.as_str();
            // A paste cut inside `fn (path:line` lost its closing parenthesis; a path may itself hold ` (`.
            match bare.split_once(" (") {
                Some((f, l)) if !f.contains(['/', '\\']) && !bare.ends_with(')') => (Some(f), l),
                _ => (None, bare),
            }
        }
    };
    let (path, line, column) = split_location(loc)?;
    // `com.acme.Foo.bar(Foo.java:12)` is Java's, not a path.
    if path.char_indices().any(|(i, ch)| ch == '(' && !path[..i].ends_with(' ')) {
        return None;
    }
    let function = function.map(|f| f.trim_start_matches("async ").to_owned());
    Some(TextFrame { path: Some(path), line: Some(line), column, function, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::super::{corpus, parse as parse_any, Language};

    /// knex/knex#6302: a terminal wrapped each frame before its location.
    #[test]
    fn frames_wrapped_before_their_location() {
        let text = "`this.driver.Client is not a constructor`\n\n  at Client_PG._acquireOnlyConnection\n  (node_modules/knex/lib/dialects/postgres/index.js:82:24)\n      at Client_PG.acquireRawConnection\n  (node_modules/knex/lib/dialects/postgres/index.js:100:17)\n      at create (node_modules/knex/lib/client.js:266:39)\n";
        let t = parse_any(text).expect("parses");
        assert_eq!(t.language, Language::Javascript);
        let got: Vec<(Option<&str>, Option<u32>, Option<&str>)> =
            t.exceptions[0].frames.iter().map(|f| (f.path.as_deref(), f.line, f.function.as_deref())).collect();
        assert_eq!(
            got,
            [
                (
                    Some("node_modules/knex/lib/dialects/postgres/index.js"),
                    Some(82),
                    Some("Client_PG._acquireOnlyConnection")
                ),
                (
                    Some("node_modules/knex/lib/dialects/postgres/index.js"),
                    Some(100),
                    Some("Client_PG.acquireRawConnection")
                ),
                (Some("node_modules/knex/lib/client.js"), Some(266), Some("create")),
            ]
        );
    }

    #[test]
    fn node_stack_with_excerpt_urls_windows_and_odd_paths() {
        let t = parse_any(corpus::JS_NODE).expect("parses");
        assert_eq!(t.language, Language::Javascript);
        assert!(t.callee_first);
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("TypeError"));
        assert_eq!(e.value.as_deref(), Some("Cannot read properties of undefined (reading 'reduce')"));
        let f = &e.frames;
        assert_eq!(f.len(), 7);
        assert_eq!(
            (f[0].path.as_deref(), f[0].line, f[0].column),
            (Some("/srv/app/src/server.js"), Some(42), Some(31))
        );
        assert_eq!(f[0].function.as_deref(), Some("computeTotal"));
        assert_eq!(f[1].function.as_deref(), Some("Layer.handle [as handle_request]"));
        assert_eq!(f[2].path, None, "async Promise.all has no file");
        assert_eq!(f[3].path.as_deref(), Some("webpack:///./src/checkout.ts"));
        assert_eq!(f[3].function.as_deref(), Some("new Checkout"));
        assert_eq!(f[4].path.as_deref(), Some("/srv/my app (copy)/src/index.js"));
        assert_eq!(f[4].function, None);
        assert_eq!(f[5].path.as_deref(), Some("node:internal/process/task_queues"));
        assert_eq!(f[6].path.as_deref(), Some(r"C:\Users\Ann\app\main.js"));
    }

    #[test]
    fn truncated_last_frame() {
        let t = parse_any(corpus::JS_TRUNCATED).expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("Error"));
        assert_eq!(e.value.as_deref(), Some("connect ECONNREFUSED 127.0.0.1:5432"));
        assert_eq!(e.frames.len(), 2);
        assert_eq!(
            (e.frames[1].path.as_deref(), e.frames[1].line, e.frames[1].column),
            (Some("/app/node_modules/pg-pool/index.js"), Some(45), None)
        );
    }
}
