//! Python tracebacks, chained ("During handling…", "The above exception…"), with source lines and 3.11 carets.

use regex::Regex;
use std::sync::LazyLock;

use super::{number, Language, ParsedTrace, TextException, TextFrame};

static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    // Anchored at a word boundary, not the line start: a logger or IDE may put any prefix in front.
    Regex::new(r#"(?:^|\s)File "(?P<path>.+)", line (?P<line>[0-9]+)(?:, in (?P<func>.+?))?\s*$"#)
        .expect("valid regex literal")
});
/// IPython and Jupyter: `File /srv/app/x.py:687, in func(self, a)`, no quotes.
static IPYTHON_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*File (?P<path>[^"\s][^:]*(?::\\[^:]*)?):(?P<line>[0-9]+)(?:, in (?P<func>.+?))?\s*$"#)
        .expect("valid regex literal")
});
static EXCEPTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<ty>[A-Za-z_][\w.]*(?:\[[^\]]*\])?)(?::\s?(?P<value>.*))?$").expect("valid regex literal")
});

const CHAIN_MARKERS: [&str; 2] = [
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
];

pub(super) fn parse(text: &str) -> Option<ParsedTrace> {
    if !text.lines().any(|l| FRAME.is_match(l) || IPYTHON_FRAME.is_match(l)) {
        return None;
    }
    let mut exceptions = Vec::new();
    let mut current = TextException::default();
    let mut in_frames = false;
    let mut last_was_frame = false;
    for raw in text.lines() {
        // Exception groups (3.11+) indent their members behind `| `.
        let line = raw.trim_end();
        let line = line.trim_start().strip_prefix("| ").unwrap_or(line);
        if line.contains("Traceback (most recent call last)") {
            if in_frames || !current.frames.is_empty() {
                exceptions.push(std::mem::take(&mut current));
            }
            in_frames = true;
            last_was_frame = false;
            continue;
        }
        if CHAIN_MARKERS.iter().any(|m| line.trim() == *m) {
            if !current.frames.is_empty() || current.ty.is_some() {
                exceptions.push(std::mem::take(&mut current));
            }
            in_frames = false;
            last_was_frame = false;
            continue;
        }
        if let Some(c) = FRAME.captures(line).or_else(|| IPYTHON_FRAME.captures(line)) {
            in_frames = true;
            current.frames.push(TextFrame {
                path: Some(c["path"].to_owned()),
                line: number(&c["line"]),
                // IPython prints the arguments too: `in load(path)`.
                function: c.name("func").map(|m| m.as_str().split('(').next().unwrap_or_default().trim().to_owned()),
                ..Default::default()
            });
            last_was_frame = true;
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("[Previous line repeated") {
            continue;
        }
        // Source lines are indented under their frame; 3.11+ adds a line of carets under them.
        if last_was_frame && line.starts_with(' ') {
            if trimmed.chars().all(|c| matches!(c, '^' | '~' | ' ')) {
                continue;
            }
            if let Some(f) = current.frames.last_mut() {
                if f.source.is_none() {
                    f.source = Some(trimmed.to_owned());
                    continue;
                }
            }
        }
        if in_frames && !line.starts_with(' ') && current.ty.is_none() {
            if let Some(c) = EXCEPTION.captures(trimmed) {
                current.ty = Some(c["ty"].to_owned());
                current.value = c.name("value").map(|m| m.as_str().to_owned()).filter(|v| !v.is_empty());
                last_was_frame = false;
                continue;
            }
        }
        // Further lines of a multi-line message.
        if current.ty.is_some() && !line.starts_with(' ') {
            if let Some(v) = current.value.as_mut() {
                v.push('\n');
                v.push_str(trimmed);
            }
        }
        last_was_frame = false;
    }
    if !current.frames.is_empty() || current.ty.is_some() {
        exceptions.push(current);
    }
    Some(ParsedTrace { language: Language::Python, callee_first: false, exceptions })
}

#[cfg(test)]
mod tests {
    use super::super::{corpus, parse as parse_any, Language};

    #[test]
    fn chained_traceback_with_sources_and_carets() {
        let t = parse_any(corpus::PYTHON_CHAINED).expect("parses");
        assert_eq!(t.language, Language::Python);
        assert_eq!(t.exceptions.len(), 2);
        let cause = &t.exceptions[0];
        assert_eq!(cause.ty.as_deref(), Some("ZeroDivisionError"));
        assert_eq!(cause.value.as_deref(), Some("division by zero"));
        assert_eq!(cause.frames.len(), 2);
        assert_eq!(cause.frames[1].path.as_deref(), Some("/srv/app/payments/total.py"));
        assert_eq!(cause.frames[1].line, Some(42));
        assert_eq!(cause.frames[1].function.as_deref(), Some("average"));
        assert_eq!(cause.frames[1].source.as_deref(), Some("return amount / count"));
        let raised = &t.exceptions[1];
        assert_eq!(raised.ty.as_deref(), Some("payments.errors.PaymentError"));
        assert_eq!(raised.value.as_deref(), Some("could not total order 7"));
        assert_eq!(raised.frames[0].path.as_deref(), Some("/srv/app/.venv/lib/python3.11/site-packages/flask/app.py"));
    }

    #[test]
    fn windows_paths_with_spaces_and_parentheses() {
        let t = parse_any(corpus::PYTHON_WINDOWS).expect("parses");
        let f = &t.exceptions[0].frames;
        assert_eq!(
            f[0].path.as_deref(),
            Some(r"C:\Users\Ann Lee\My Project (2)\venv\Lib\site-packages\requests\api.py")
        );
        assert_eq!(f[1].path.as_deref(), Some(r"C:\Users\Ann Lee\My Project (2)\app\client.py"));
        assert_eq!(f[1].function.as_deref(), Some("<module>"));
        assert_eq!(t.exceptions[0].ty.as_deref(), Some("requests.exceptions.ConnectionError"));
    }

    #[test]
    fn truncated_paste_keeps_its_frames() {
        let t = parse_any(corpus::PYTHON_TRUNCATED).expect("parses");
        assert_eq!(t.exceptions[0].frames.len(), 2);
        assert_eq!(t.exceptions[0].ty, None);
    }

    /// Lines behind a prefix no collector rule knows (VS Code's Jupyter log, microsoft/vscode-jupyter#8786) and
    /// behind docker compose's (TheSpaghettiDetective/obico-server#207).
    #[test]
    fn frames_behind_any_prefix() {
        let vscode = "Warn 12:06:22: StdErr from Kernel Process Traceback (most recent call last):\nWarn 12:06:22: StdErr from Kernel Process   File \"/home/u/.local/lib/python3.9/site-packages/IPython/core/interactiveshell.py\", line 2814, in _run_cell\nWarn 12:06:22: StdErr from Kernel Process     return runner(coro)\n";
        let t = parse_any(vscode).expect("parses");
        assert_eq!(t.language, Language::Python);
        assert_eq!(t.exceptions[0].frames[0].line, Some(2814));
        assert_eq!(t.exceptions[0].frames[0].function.as_deref(), Some("_run_cell"));
        let compose = "web_1     | Traceback (most recent call last):\nweb_1     |   File \"manage.py\", line 15, in <module>\nweb_1     |     execute_from_command_line(sys.argv)\nweb_1     |   File \"/usr/local/lib/python3.6/site-packages/django/core/management/__init__.py\", line 381, in execute_from_command_line\nweb_1     |     utility.execute()\nweb_1     | KeyError: 'x'\n";
        let t = parse_any(compose).expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.frames.len(), 2);
        assert_eq!(e.frames[0].source.as_deref(), Some("execute_from_command_line(sys.argv)"));
        assert_eq!(e.ty.as_deref(), Some("KeyError"));
    }

    /// IPython 8 / Jupyter: `File /path/x.py:687, in func(a, b)` with `--> 687` markers in the excerpt.
    #[test]
    fn ipython_frames() {
        let text = "---------------------------------------------------------------------------\nValueError                                Traceback (most recent call last)\nCell In[3], line 1\n----> 1 load()\n\nFile /srv/nb/lib/loader.py:687, in load(path)\n    685 def load(path=None):\n    686     if path is None:\n--> 687         raise ValueError(\"no path\")\n\nValueError: no path\n";
        let t = parse_any(text).expect("parses");
        assert_eq!(t.language, Language::Python);
        let f = &t.exceptions[0].frames;
        assert_eq!(
            (f[0].path.as_deref(), f[0].line, f[0].function.as_deref()),
            (Some("/srv/nb/lib/loader.py"), Some(687), Some("load"))
        );
    }
}
