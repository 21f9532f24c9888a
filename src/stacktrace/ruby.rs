//! Ruby backtraces: the classic order (crash first, then `from …` lines), the reversed `N: from` order of Ruby
//! 2.5–2.7 on a terminal, and Ruby 3.4's plain quotes (`in 'Pay#charge'`).

use regex::Regex;
use std::sync::LazyLock;

use super::{number, Language, ParsedTrace, TextException, TextFrame};

static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:(?P<n>[0-9]+): )?(?:from )?(?P<path>\S.*?):(?P<line>[0-9]+):in [`'](?P<func>.+?)'(?P<rest>: .*)?$",
    )
    .expect("valid regex literal")
});
static MESSAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^: (?P<value>.*) \((?P<ty>[A-Z][\w:]*)\)$").expect("valid regex literal"));

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    let mut ex = TextException::default();
    let mut numbered = false;
    for line in text.lines() {
        let Some(c) = FRAME.captures(line) else {
            continue;
        };
        numbered |= c.name("n").is_some();
        if let Some(rest) = c.name("rest") {
            if let Some(m) = MESSAGE.captures(rest.as_str()) {
                ex.ty = Some(m["ty"].to_owned());
                ex.value = Some(m["value"].to_owned());
            } else if ex.value.is_none() {
                ex.value = Some(rest.as_str()[2..].to_owned());
            }
        }
        let func = &c["func"];
        // `Pay#charge`, `Pay.run`, `block in create`: the method and, when printed, its class.
        let method = func.rsplit(' ').next().unwrap_or(func);
        let module = method.rsplit_once(['#', '.']).map(|(m, _)| m.to_owned()).filter(|m| !m.is_empty());
        ex.frames.push(TextFrame {
            path: Some(c["path"].to_owned()),
            line: number(&c["line"]),
            function: Some(func.to_owned()),
            module,
            ..Default::default()
        });
    }
    if ex.frames.is_empty() {
        return None;
    }
    // Reversed traces list callers first (`2: from`, `1: from`) and end with the crash.
    Some(ParsedTrace { language: Language::Ruby, callee_first: !numbered, exceptions: vec![ex] })
}

#[cfg(test)]
mod tests {
    use super::super::{corpus, parse as parse_any, Language};

    #[test]
    fn classic_backtrace_with_gems_and_windows() {
        let t = parse_any(corpus::RUBY_CLASSIC).expect("parses");
        assert_eq!(t.language, Language::Ruby);
        assert!(t.callee_first);
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("NoMethodError"));
        assert_eq!(e.value.as_deref(), Some("undefined method `+' for nil:NilClass"));
        assert_eq!(e.frames.len(), 4);
        assert_eq!((e.frames[0].path.as_deref(), e.frames[0].line), (Some("/srv/app/app/models/order.rb"), Some(42)));
        assert_eq!(e.frames[1].function.as_deref(), Some("block in create"));
        assert_eq!(
            e.frames[3].path.as_deref(),
            Some("C:/Ruby32/lib/ruby/gems/3.2.0/gems/rack-3.0.8/lib/rack/builder.rb")
        );
    }

    #[test]
    fn reversed_order_ends_with_the_crash() {
        let t = parse_any(corpus::RUBY_REVERSED).expect("parses");
        assert_eq!(t.language, Language::Ruby, "not mistaken for Python");
        assert!(!t.callee_first);
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("RuntimeError"));
        assert_eq!(e.value.as_deref(), Some("card declined"));
        let lines: Vec<Option<u32>> = e.frames.iter().map(|f| f.line).collect();
        assert_eq!(lines, vec![Some(9), Some(5), Some(2)]);
    }

    #[test]
    fn ruby_34_quotes_and_paths_with_spaces() {
        let t = parse_any(corpus::RUBY_34).expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.ty.as_deref(), Some("Pay::Declined"));
        assert_eq!(e.frames[0].path.as_deref(), Some("lib/my app (v2)/pay.rb"));
        assert_eq!(e.frames[0].function.as_deref(), Some("Pay#charge"));
        assert_eq!(e.frames[0].module.as_deref(), Some("Pay"));
        assert_eq!(e.frames[1].module.as_deref(), Some("Pay"));
    }
}
