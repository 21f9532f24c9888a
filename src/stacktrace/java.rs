//! Java and Kotlin (JVM) stack traces: `Caused by:` chains, `... N more`, module/class-loader prefixes, and the
//! prefixes Android's logcat and crash reporters put before every line.

use regex::Regex;
use std::sync::LazyLock;

use super::{number, Language, ParsedTrace, TextException, TextFrame};

static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*at (?:[\w.$-]+(?:@[\w.$-]+)?/)*(?P<class>[\w$.]+)\.(?P<method><?[\w$-]+>?)\s*\((?P<src>[^()]*)\)(?:\s+~?\[[^\]]*\])?\s*$")
        .expect("valid regex literal")
});
/// A frame without the `at`, as some test reporters lay them out in columns (speekha/httpmocker#48:
/// `org.junit.runners.ParentRunner.runLeaf      (ParentRunner.java:325)`). Without the `at`, code such as
/// `foo.bar(baz)` would look the same, so only a JVM source file and line count.
static BARE_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?P<class>[\w$]+(?:\.[\w$]+)+)\.(?P<method><?[\w$-]+>?)\s*\((?P<src>[\w$-]+\.(?:java|kt|kts|scala|groovy):[0-9]+)\)\s*$")
        .expect("valid regex literal")
});

/// A frame line's class, method and parenthesised source, with or without the `at`.
fn frame(line: &str) -> Option<regex::Captures<'_>> {
    FRAME.captures(line).filter(|c| jvm_source(&c["src"])).or_else(|| BARE_FRAME.captures(line))
}
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^(?:Exception in thread "[^"]*" |Caused by: |FATAL EXCEPTION: \S+ *)?(?P<ty>[a-zA-Z_$][\w$]*(?:\.[\w$]+)+)(?:: (?P<value>.*))?$"#)
        .expect("valid regex literal")
});
/// `11-20 14:03:12.345  4242  4242 E AndroidRuntime: ` and `E/AndroidRuntime( 4242): `.
static LOGCAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+\s+[0-9]+\s+[0-9]+ [VDIWEF] [^:]+: |[VDIWEF]/[^(:]+\(\s*[0-9]+\): )")
        .expect("valid regex literal")
});

/// What a JVM prints in a frame's parentheses: a file name and line (`Foo.java:12`), `Native Method`, `Unknown
/// Source`. V8 prints paths (`/app/x.js:3:1`) or a line *and* column (`module.js:336:15`) there.
fn jvm_source(src: &str) -> bool {
    let file = src.split(':').next().unwrap_or(src);
    !src.contains(['/', '\\'])
        && src.matches(':').count() <= 1
        && ![".js", ".mjs", ".cjs", ".ts"].iter().any(|e| file.ends_with(e))
}

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    let lines: Vec<String> = text.lines().map(|l| LOGCAT.replace(l, "").into_owned()).collect();
    // A JVM frame names a file, never a path: `(Foo.java:12)`; `(/app/x.js:3:1)` is V8's.
    if !lines.iter().any(|l| frame(l).is_some()) {
        return None;
    }
    // Printed outermost first, then its causes; the chain is causes first.
    let mut printed: Vec<TextException> = Vec::new();
    let mut in_suppressed = false;
    for line in &lines {
        let trimmed = line.trim();
        if let Some(c) = frame(line) {
            if in_suppressed {
                continue;
            }
            if printed.is_empty() {
                printed.push(TextException::default());
            }
            let src = &c["src"];
            let (path, line_no) = match src.rsplit_once(':') {
                Some((file, n)) if number(n).is_some() => (Some(file.to_owned()), number(n)),
                _ if src.contains('.') && !src.contains(' ') => (Some(src.to_owned()), None),
                _ => (None, None),
            };
            if let Some(e) = printed.last_mut() {
                e.frames.push(TextFrame {
                    path,
                    line: line_no,
                    function: Some(c["method"].to_owned()),
                    module: Some(c["class"].to_owned()),
                    ..Default::default()
                });
            }
            continue;
        }
        if trimmed.starts_with("Suppressed: ") {
            in_suppressed = true;
            continue;
        }
        if trimmed.starts_with("...") && trimmed.ends_with("more") {
            continue;
        }
        if let Some(c) = HEADER.captures(trimmed) {
            let is_cause = trimmed.starts_with("Caused by: ");
            if !is_cause && !printed.is_empty() {
                continue;
            }
            in_suppressed = false;
            printed.push(TextException {
                ty: Some(c["ty"].to_owned()),
                value: c.name("value").map(|m| m.as_str().to_owned()),
                frames: Vec::new(),
            });
        }
    }
    printed.reverse();
    Some(ParsedTrace { language: Language::Java, callee_first: true, exceptions: printed })
}

#[cfg(test)]
mod tests {
    use super::super::{corpus, parse as parse_any, Language};

    #[test]
    fn caused_by_chain_is_causes_first() {
        let t = parse_any(corpus::JAVA_CAUSED_BY).expect("parses");
        assert_eq!(t.language, Language::Java);
        assert_eq!(t.exceptions.len(), 2);
        let cause = &t.exceptions[0];
        assert_eq!(cause.ty.as_deref(), Some("java.lang.ArithmeticException"));
        assert_eq!(cause.frames.len(), 2, "`... 2 more` adds nothing");
        let raised = &t.exceptions[1];
        assert_eq!(raised.ty.as_deref(), Some("java.lang.IllegalStateException"));
        assert_eq!(raised.value.as_deref(), Some("could not charge order 7"));
        let f = &raised.frames[1];
        assert_eq!(f.path.as_deref(), Some("CheckoutController.kt"));
        assert_eq!(f.line, Some(17));
        assert_eq!(f.module.as_deref(), Some("com.acme.web.CheckoutController"));
        assert_eq!(f.function.as_deref(), Some("checkout"));
        assert_eq!(raised.frames[2].module.as_deref(), Some("java.lang.Thread"), "module prefix dropped");
    }

    /// A test reporter's columns (speekha/httpmocker#48): no `at`, the class and method padded to the source.
    #[test]
    fn frames_laid_out_in_columns_without_at() {
        let text = "   org.junit.runners.ParentRunner.runLeaf                (ParentRunner.java:325)          \n   org.junit.runners.ParentRunner$3.run                  (ParentRunner.java:290)\n";
        let t = parse_any(text).expect("parses");
        assert_eq!(t.language, Language::Java);
        let f = &t.exceptions[0].frames;
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].path.as_deref(), f[0].line), (Some("ParentRunner.java"), Some(325)));
        assert_eq!(f[1].module.as_deref(), Some("org.junit.runners.ParentRunner$3"));
        // Code that calls a method is not a frame: Node prints the failing line above its stack.
        let node = "/app/index.js:3\n    foo.bar(baz)\n        ^\n\nTypeError: foo.bar is not a function\n    at Object.<anonymous> (/app/index.js:3:9)\n";
        assert_eq!(parse_any(node).expect("parses").language, Language::Javascript);
    }

    #[test]
    fn android_logcat_prefixes_are_stripped() {
        let t = parse_any(corpus::JAVA_ANDROID).expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("java.lang.NullPointerException"));
        assert_eq!(e.frames.len(), 3);
        assert_eq!(e.frames[0].path.as_deref(), Some("CartFragment.kt"));
        assert_eq!(e.frames[0].module.as_deref(), Some("com.acme.app.ui.CartFragment"));
    }
}
