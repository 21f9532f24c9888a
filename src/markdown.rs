//! Putting text into the Markdown shipwatch writes (release reports, GitHub issues): escaped so that what came from
//! outside — an error's message, a function name, a commit summary — shows as written and cannot add links,
//! formatting, HTML, or (in issues) mentions and issue references.

/// Escapes Markdown and HTML punctuation in `s` (commit summaries, names in reports). `#12` is left alone so GitHub
/// links it.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Text from an event (an error's title or message) for a GitHub issue: on one line, Markdown and HTML escaped,
/// and `@name` / `#123` kept from notifying anyone or linking an issue.
pub fn untrusted(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out = String::with_capacity(one_line.len());
    for ch in escape(&one_line).chars() {
        if matches!(ch, '@' | '#' | '~' | '!') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `s` as an inline code span, on one line, with a fence longer than any run of backticks inside it.
pub fn code(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let longest = one_line.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{one_line}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markdown_and_html() {
        assert_eq!(escape("fix <script> | *bold* [x](y)"), "fix \\<script\\> \\| \\*bold\\* \\[x\\](y)");
    }

    #[test]
    fn untrusted_text_cannot_mention_link_or_break_the_line() {
        let title = "KeyError: @octocat see #1 [click](https://evil.example)\n<img src=x onerror=alert(1)>";
        let out = untrusted(title);
        assert_eq!(
            out,
            "KeyError: \\@octocat see \\#1 \\[click\\](https://evil.example) \\<img src=x onerror=alert(1)\\>"
        );
        assert!(!out.contains('\n'));
    }

    #[test]
    fn code_spans_hold_any_backticks() {
        assert_eq!(code("handler"), "`handler`");
        assert_eq!(code("a ` b"), "``a ` b``");
        assert_eq!(code("`x`"), "`` `x` ``");
        assert_eq!(code("two\nlines"), "`two lines`");
    }
}
