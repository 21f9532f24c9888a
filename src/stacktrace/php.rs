//! PHP exceptions: `Type: message in path:line`, `Stack trace:` with `#N path(line): call`, `Next Type:` for
//! chained exceptions, and the `PHP Fatal error:  Uncaught` wrapper.
//!
//! PHP prints where each call was made, and the function being called: the frame for `#0 path(17): Gateway->charge()`
//! is line 17 of `path` in the function of the *next* entry. The thrown-at location from the header is the top frame.

use regex::Regex;
use std::sync::LazyLock;

use super::{number, Language, ParsedTrace, TextException, TextFrame};

static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:PHP )?(?:Fatal error: +Uncaught |Next )?(?P<ty>[A-Za-z_\\][\w\\]*)(?:: (?P<value>.*?))? in (?P<path>.+?)(?::(?P<line>[0-9]+)| on line (?P<line2>[0-9]+))\s*$")
        .expect("valid regex literal")
});
static ENTRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^#[0-9]+ (?:(?P<path>.+?)\((?P<line>[0-9]+)\): (?P<call>.+)|\[internal function\]: (?P<icall>.+)|\{main\})\s*$",
    )
    .expect("valid regex literal")
});

/// Where a trace flattened onto one line (newlines lost in a chat or an inline-code paste) starts its next part.
static FLAT_BREAK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\s+(?:Stack trace:\s+)?(?P<entry>#[0-9]+ (?:/|[A-Za-z]:\\|\[internal function\]|\{main\}))")
        .expect("valid regex literal")
});

/// A trace flattened onto one line (guzzle/guzzle#2847: `… in /app/x.php:211 Stack trace: #0 /app/x.php(158): …
/// #1 …`, in backticks) back into its lines; other text is left as it is.
fn unflatten(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.lines().any(|l| l.contains("Stack trace: #0 ")) {
        return std::borrow::Cow::Borrowed(text);
    }
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains("Stack trace: #0 ") {
                FLAT_BREAK.replace_all(l.trim().trim_matches('`'), "\n$entry").into_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::borrow::Cow::Owned(lines.join("\n"))
}

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    let text = unflatten(text);
    let text = text.as_ref();
    // A stack-trace entry, or at least a message line naming a `.php` file (a paste cut after its first line).
    let php_header = |l: &str| HEADER.captures(l.trim()).is_some_and(|c| c["path"].ends_with(".php"));
    if !text.lines().any(|l| ENTRY.is_match(l.trim()) || php_header(l)) {
        return None;
    }
    let mut exceptions: Vec<TextException> = Vec::new();
    // (thrown-at location, entries) per exception.
    let mut entries: Vec<(Option<String>, Option<u32>, Option<String>)> = Vec::new();
    let mut thrown_at: Option<(String, Option<u32>)> = None;
    let flush = |exceptions: &mut Vec<TextException>,
                 entries: &mut Vec<(Option<String>, Option<u32>, Option<String>)>,
                 thrown_at: &mut Option<(String, Option<u32>)>| {
        let Some(e) = exceptions.last_mut() else {
            return;
        };
        let mut frames = Vec::new();
        // Each location runs the function named by the entry below it; the last one is `{main}`.
        let mut locations: Vec<(Option<String>, Option<u32>)> = Vec::new();
        if let Some((p, l)) = thrown_at.take() {
            locations.push((Some(p), l));
        }
        locations.extend(entries.iter().map(|(p, l, _)| (p.clone(), *l)));
        for (i, (path, line)) in locations.into_iter().enumerate() {
            let call = entries.get(i).and_then(|(_, _, c)| c.clone());
            let (module, function) = split_call(call.as_deref());
            if path.is_some() || function.is_some() {
                frames.push(TextFrame { path, line, function, module, ..Default::default() });
            }
        }
        entries.clear();
        e.frames = frames;
    };
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(c) = HEADER.captures(line) {
            if line.starts_with("thrown in ") {
                continue;
            }
            flush(&mut exceptions, &mut entries, &mut thrown_at);
            exceptions.push(TextException {
                ty: Some(c["ty"].to_owned()),
                value: c.name("value").map(|m| m.as_str().to_owned()),
                frames: Vec::new(),
            });
            let line_no = c.name("line").or_else(|| c.name("line2")).and_then(|m| number(m.as_str()));
            thrown_at = Some((c["path"].to_owned(), line_no));
            continue;
        }
        if let Some(c) = ENTRY.captures(line) {
            if exceptions.is_empty() {
                exceptions.push(TextException::default());
            }
            let call = c.name("call").or_else(|| c.name("icall")).map(|m| m.as_str().to_owned());
            let call = call.or_else(|| line.ends_with("{main}").then(|| "{main}".to_owned()));
            entries.push((
                c.name("path").map(|m| m.as_str().to_owned()),
                c.name("line").and_then(|m| number(m.as_str())),
                call,
            ));
        }
    }
    flush(&mut exceptions, &mut entries, &mut thrown_at);
    Some(ParsedTrace { language: Language::Php, callee_first: true, exceptions })
}

/// `App\Pay\Gateway->charge(Object(App\Order))` → (`App\Pay\Gateway`, `charge`).
fn split_call(call: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(call) = call else {
        return (None, None);
    };
    let name = call.split('(').next().unwrap_or(call);
    for sep in ["->", "::"] {
        if let Some((class, method)) = name.rsplit_once(sep) {
            return (Some(class.to_owned()), Some(method.to_owned()));
        }
    }
    (None, Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::{corpus, parse as parse_any, Language};

    /// guzzle/guzzle#2847: the whole trace on one line, in backticks.
    #[test]
    fn a_trace_flattened_onto_one_line() {
        let text = "`Fatal error: Uncaught GuzzleHttp\\Exception\\RequestException: cURL error 2: (see https://curl.haxx.se/libcurl/c/libcurl-errors.html) for https://oauth.example/token in /Users/u/site/vendor/guzzlehttp/guzzle/src/Handler/CurlFactory.php:211 Stack trace: #0 /Users/u/site/vendor/guzzlehttp/guzzle/src/Handler/CurlFactory.php(158): GuzzleHttp\\Handler\\CurlFactory::createRejection(Object(GuzzleHttp\\Handler\\EasyHandle), Array) #1 /Users/u/site/vendor/guzzlehttp/guzzle/src/Handler/CurlFactory.php(110): GuzzleHttp\\Handler\\CurlFactory::finishError(Object(GuzzleHttp\\Handler\\CurlMultiHandler)) #2 {main}`";
        let t = parse_any(text).expect("parses");
        assert_eq!(t.language, Language::Php);
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("GuzzleHttp\\Exception\\RequestException"));
        let got: Vec<(Option<u32>, Option<&str>)> = e.frames.iter().map(|f| (f.line, f.function.as_deref())).collect();
        assert_eq!(got[..2], [(Some(211), Some("createRejection")), (Some(158), Some("finishError"))]);
        assert_eq!(got[2].0, Some(110));
    }

    #[test]
    fn uncaught_with_shifted_functions() {
        let t = parse_any(corpus::PHP_UNCAUGHT).expect("parses");
        assert_eq!(t.language, Language::Php);
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("RuntimeException"));
        assert_eq!(e.value.as_deref(), Some("Card declined"));
        let f: Vec<(Option<&str>, Option<u32>, Option<&str>)> =
            e.frames.iter().map(|f| (f.path.as_deref(), f.line, f.function.as_deref())).collect();
        assert_eq!(
            f,
            vec![
                (Some("/var/www/app/src/Pay/Gateway.php"), Some(42), Some("charge")),
                (Some("/var/www/app/src/Pay/Service.php"), Some(17), Some("checkout")),
                (
                    Some("/var/www/app/vendor/laravel/framework/src/Illuminate/Routing/Controller.php"),
                    Some(54),
                    Some("callAction")
                ),
                (None, None, Some("{main}")),
            ]
        );
        assert_eq!(e.frames[0].module.as_deref(), Some(r"App\Pay\Gateway"));
    }

    #[test]
    fn chained_exceptions_with_windows_paths() {
        let t = parse_any(corpus::PHP_CHAINED_WINDOWS).expect("parses");
        assert_eq!(t.exceptions.len(), 2);
        assert_eq!(t.exceptions[0].ty.as_deref(), Some("InvalidArgumentException"));
        assert_eq!(t.exceptions[0].frames[0].path.as_deref(), Some(r"C:\xampp\htdocs\my shop (old)\src\Money.php"));
        assert_eq!(t.exceptions[0].frames[0].function.as_deref(), Some("__construct"));
        assert_eq!(t.exceptions[0].frames[1].line, Some(5));
        assert_eq!(t.exceptions[1].ty.as_deref(), Some("LogicException"));
        assert_eq!(t.exceptions[1].frames[0].line, Some(7));
    }
}
