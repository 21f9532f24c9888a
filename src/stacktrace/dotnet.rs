//! .NET exceptions as `ToString()` prints them: `Type: message ---> Inner: message`, inner frames first, separated
//! by `--- End of inner exception stack trace ---`; frames `at Ns.Class.Method(args) in path:line N`.

use regex::Regex;
use std::sync::LazyLock;

use super::{number, Language, ParsedTrace, TextException, TextFrame};

/// `at Ns.Type.Method(args) in path:line 42`, and the same in any UI language the runtime was localized to: one word
/// for `at` (`bei`, `à`, `в`, `en`, `在`, …), one for `in` (`in`, `dans`, `location`, `位置`, …), and the word(s) for
/// `line` (`Zeile`, `ligne`, `строка`, `Line number`, …) before the number.
static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*\S+ (?P<func>[^\s(]+(?:\[[^\]]*\])?\([^)]*\))(?: \S+ (?P<path>(?:[A-Za-z]:)?[^:\s][^:]*?\.(?:cs|vb|fs|cshtml|razor|xaml)):[^0-9:]{0,24}?(?P<line>[0-9]+)\.?)?\s*$",
    )
    .expect("valid regex literal")
});
/// A frame whose location was wrapped away: `in Ns.Type.Method(args) location`.
static FRAME_HEAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*\S+ [^\s(]+(?:\[[^\]]*\])?\([^)]*\)(?: \S+)?\s*$").expect("valid regex literal"));
/// A location that a console wrapped onto the next line: `   C:\src\X.cs:Line number 273`.
static WRAPPED_LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:[A-Za-z]:)?[^:\s][^:]*\.(?:cs|vb|fs|cshtml|razor|xaml):[^0-9:]{0,24}?[0-9]+\.?\s*$")
        .expect("valid regex literal")
});
static TYPE_AND_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:Unhandled [Ee]xception\. )?(?P<ty>[A-Za-z_][\w`]*(?:\.[\w`]+)+)(?:: (?P<value>.*))?$")
        .expect("valid regex literal")
});

const INNER_END: &str = "--- End of inner exception stack trace ---";

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    let joined = join_wrapped(text);
    let text = joined.as_str();
    if !text.lines().any(|l| FRAME.captures(l).is_some_and(|c| c.name("path").is_some()) || l.contains(INNER_END)) {
        // Without a single `in path:line N` this could be anything that prints `at X()`.
        return None;
    }
    // Header: everything before the first frame; ` ---> ` separates outer from inner exceptions.
    let mut header = String::new();
    let mut groups: Vec<Vec<TextFrame>> = vec![Vec::new()];
    let mut seen_frame = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(c) = FRAME.captures(line) {
            seen_frame = true;
            let func = &c["func"];
            let name = func.split('(').next().unwrap_or(func);
            let (module, function) = match name.rsplit_once('.') {
                Some((m, f)) => (Some(m.to_owned()), f.to_owned()),
                None => (None, name.to_owned()),
            };
            if let Some(g) = groups.last_mut() {
                g.push(TextFrame {
                    path: c.name("path").map(|m| m.as_str().to_owned()),
                    line: c.name("line").and_then(|m| number(m.as_str())),
                    function: Some(function),
                    module,
                    ..Default::default()
                });
            }
        } else if trimmed == INNER_END {
            groups.push(Vec::new());
        } else if !seen_frame && !trimmed.is_empty() {
            if !header.is_empty() {
                header.push(' ');
            }
            header.push_str(trimmed);
        } else if let Some(inner) = trimmed.strip_prefix("---> ") {
            // Newer runtimes print inner exceptions on their own lines.
            header.push_str(" ---> ");
            header.push_str(inner);
        }
    }
    let mut printed: Vec<TextException> = header
        .split(" ---> ")
        .map(|part| match TYPE_AND_MESSAGE.captures(part.trim()) {
            Some(c) => TextException {
                ty: Some(c["ty"].to_owned()),
                value: c.name("value").map(|m| m.as_str().to_owned()),
                frames: Vec::new(),
            },
            None => TextException { ty: None, value: Some(part.trim().to_owned()), frames: Vec::new() },
        })
        .collect();
    // Frame groups run innermost first; the header runs outermost first.
    printed.reverse();
    for (i, frames) in groups.into_iter().enumerate() {
        match printed.get_mut(i) {
            Some(e) => e.frames = frames,
            None => printed.push(TextException { frames, ..Default::default() }),
        }
    }
    Some(ParsedTrace { language: Language::Dotnet, callee_first: true, exceptions: printed })
}

/// Joins a frame line whose location was wrapped onto the next line back into one line.
fn join_wrapped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        if let Some(next) = lines.peek() {
            if WRAPPED_LOCATION.is_match(next) && FRAME_HEAD.is_match(line) {
                out.push(' ');
                out.push_str(next.trim());
                lines.next();
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{corpus, parse as parse_any, Language};

    #[test]
    fn inner_exception_comes_first_in_the_chain() {
        let t = parse_any(corpus::DOTNET_INNER).expect("parses");
        assert_eq!(t.language, Language::Dotnet);
        assert_eq!(t.exceptions.len(), 2);
        let inner = &t.exceptions[0];
        assert_eq!(inner.ty.as_deref(), Some("System.DivideByZeroException"));
        assert_eq!(inner.frames.len(), 2);
        assert_eq!(inner.frames[0].path.as_deref(), Some(r"C:\src\Acme Pay (main)\Totals.cs"));
        assert_eq!(inner.frames[0].line, Some(12));
        assert_eq!(inner.frames[0].module.as_deref(), Some("Acme.Pay.Totals"));
        assert_eq!(inner.frames[0].function.as_deref(), Some("Average"));
        let outer = &t.exceptions[1];
        assert_eq!(outer.ty.as_deref(), Some("System.InvalidOperationException"));
        assert_eq!(outer.value.as_deref(), Some("Could not charge order 7"));
        assert_eq!(outer.frames.len(), 4);
        assert_eq!(outer.frames[2].path, None, "framework frames have no file");
    }

    #[test]
    fn unhandled_exception_prefix() {
        let t = parse_any(corpus::DOTNET_SIMPLE).expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("System.NullReferenceException"));
        assert_eq!(e.frames[0].path.as_deref(), Some("/home/dev/shop/Program.cs"));
        assert_eq!(e.frames[0].function.as_deref(), Some("Main"));
    }

    /// A German runtime's trace and an English translation of a localized one whose locations wrapped onto their own
    /// lines, as pasted in JamesNK/Newtonsoft.Json#1383.
    #[test]
    fn localized_traces_and_wrapped_locations() {
        let german = "System.NullReferenceException: Der Objektverweis wurde nicht festgelegt.\n   bei Shop.Cart.Total() in C:\\build\\Shop\\Cart.cs:Zeile 42.\n   bei Shop.Program.Main(String[] args) in C:\\build\\Shop\\Program.cs:Zeile 9.\n";
        let t = parse_any(german).expect("parses");
        assert_eq!(t.language, Language::Dotnet);
        let f = &t.exceptions[0].frames;
        assert_eq!((f[0].path.as_deref(), f[0].line), (Some(r"C:\build\Shop\Cart.cs"), Some(42)));
        assert_eq!(f[1].function.as_deref(), Some("Main"));
        let wrapped = "in Newtonsoft.Json.JsonTextReader.ReadData(Boolean append, Int32 charsRequired) location\n C:\\Dev\\Src\\Newtonsoft.Json\\JsonTextReader.cs:Line number 322\n   in Newtonsoft.Json.JsonTextReader.ReadAsString() location\n C:\\Dev\\Src\\Newtonsoft.Json\\JsonTextReader.cs:Line number 463\n";
        let t = parse_any(wrapped).expect("parses");
        let lines: Vec<Option<u32>> = t.exceptions[0].frames.iter().map(|f| f.line).collect();
        assert_eq!(lines, [Some(322), Some(463)]);
        assert_eq!(t.exceptions[0].frames[1].function.as_deref(), Some("ReadAsString"));
    }

    /// A German runtime with paths relative to the project (bovender/XLToolbox#329, an add-in's exception report).
    #[test]
    fn localized_frames_with_relative_paths() {
        let text = "System.NullReferenceException: Der Objektverweis wurde nicht auf eine Objektinstanz festgelegt.\n   bei XLToolbox.Excel.Models.Reference.set_ReferenceString(String value) in XLToolbox\\Excel\\Models\\Reference.cs:Zeile 154.\n   bei XLToolbox.Jumper.Parse() in XLToolbox\\Jumper.cs:Zeile 164.\n";
        let t = parse_any(text).expect("parses");
        assert_eq!(t.language, Language::Dotnet);
        let f = &t.exceptions[0].frames;
        assert_eq!((f[0].path.as_deref(), f[0].line), (Some(r"XLToolbox\Excel\Models\Reference.cs"), Some(154)));
        assert_eq!(f[1].function.as_deref(), Some("Parse"));
    }
}
