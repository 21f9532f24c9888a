//! Getting a trace out of what people actually paste: log-collector and logger prefixes on every line, Markdown
//! quotes and indentation, trailing padding, Windows line ends. The language parsers then see the trace itself.

use regex::Regex;
use std::sync::LazyLock;

/// Prefixes that collectors, orchestrators and loggers put in front of every line of a program's output. Each is
/// anchored at the line start and shaped tightly enough that no line of a trace itself matches it.
static PREFIXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // Kubernetes/containerd (CRI) log files: `2024-05-01T10:00:00.123456789Z stderr F `.
        r"^[0-9]{4}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9](?:\.[0-9]+)?(?:Z|[+-][0-9][0-9]:?[0-9][0-9])? (?:stdout|stderr) [FP] ",
        // journald / syslog: `Apr 30 20:07:15 myserver.com.br sidekiq[78538]: ` (sidekiq/sidekiq#4874 and the like).
        r"^(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9] \S+ [^\s:\[]+(?:\[[0-9]+\])?: ",
        // docker compose: `web_1  | `, `api-1  | `.
        r"^[\w.-]+\s+\| ",
        // foreman, honcho and overmind running a Procfile: `09:09:34 web.1  | ` (migrs/rack-server-pages#16).
        r"^[0-9]{2}:[0-9]{2}:[0-9]{2} [\w.-]+\s+\| ",
        // Heroku's log stream, behind its timestamp (taken off first, below): `app[web.1]: `, `app[worker.2]: `
        // (`2020-06-12T13:25:48.023837+00:00 app[web.1]:   File "app.py", line 1, in <module>`).
        r"^(?:app|heroku)\[[\w.-]+\]: ",
        // Celery and other `[timestamp: LEVEL/Process]` loggers: `[2023-01-31 09:22:12,015: WARNING/MainProcess] `.
        r"^\[[0-9]{4}-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9](?:[.,][0-9]+)?(?:: [\w/.-]+)?\] ",
        // Python `logging` / Home Assistant / Rails loggers that prefix each line with a timestamp and a level:
        // `2024-05-01 10:00:00.123 ERROR (MainThread) [homeassistant.core] `.
        r"^[0-9]{4}-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9](?:[.,][0-9]+)?(?:Z|[+-][0-9][0-9]:?[0-9][0-9])?\s+(?:\[?(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\]?\s+)?(?:\([\w-]+\)\s+)?(?:\[[^\]]+\]\s+)?",
        // Android logcat: `11-20 14:03:12.345  4242  4242 E AndroidRuntime: ` and `E/AndroidRuntime( 4242): `.
        r"^[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+\s+[0-9]+\s+[0-9]+ [VDIWEF] [^:]+: ",
        r"^[VDIWEF]/[^(:]+\(\s*[0-9]+\): ",
        // openSUSE's Open Build Service logs, seconds since the build started: `[   28s] ` (kevin1024/vcrpy#427).
        r"^\[\s*[0-9]+s\] ",
        // A web log viewer's line-number anchors, kept as Markdown links when its text is pasted into an issue:
        // `[38](https://…/tasks/5f87…#line-38)` (pulumi/pulumi#13527).
        r"^\[[0-9]+\]\(\S*#line-[0-9]+\)",
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
    let text = werkzeug_frames(&text);
    let text = unescape_html(&text);
    let lines: Vec<String> = text.lines().map(|l| unwrap_autolinks(&strip_prefixes(l)).into_owned()).collect();
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

/// A frame's heading on the Werkzeug debugger's page (Flask's and Werkzeug's error page in debug mode), as its HTML
/// (bagarrattaa/email-nuker#11: `<h4>File <cite class="filename">"…/flask/app.py"</cite>,⏎ line <em
/// class="line">1523</em>,⏎ in <code class="function">full_dispatch_request</code></h4>`) and as GitHub turns the
/// page into Markdown when it is pasted (danmou/onenote_export#10: `- #### File "…/flask/app.py", line _2464_, in
/// `__call__``).
static WERKZEUG_FRAME: LazyLock<[Regex; 2]> = LazyLock::new(|| {
    [
        r#"(?:<h4>)?File <cite class="filename">"(?P<path>[^"<]+)"</cite>,\s*line <em class="line">(?P<line>[0-9]+)</em>,\s*in <code class="function">(?P<func>[^<]*)</code>(?:</h4>)?"#,
        r#"File "(?P<path>[^"]+)", line _(?P<line>[0-9]+)_, in `(?P<func>[^`]*)`"#,
    ]
    .map(|p| Regex::new(p).expect("valid regex literal"))
});

/// The Werkzeug debugger's frame headings (see [`WERKZEUG_FRAME`]) as the lines of a Python traceback.
fn werkzeug_frames(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for re in WERKZEUG_FRAME.iter() {
        if re.is_match(&out) {
            out = std::borrow::Cow::Owned(re.replace_all(&out, "File \"$path\", line $line, in $func").into_owned());
        }
    }
    out
}

/// Links a page made of text that looked like an address, as they come out when the page is pasted into an issue
/// as Markdown (pulumi/pulumi#13527: `/home/runner/go/pkg/mod/[github.com/spf13/cobra@v1.7.0/command.go:1068, Opens
/// in a new window](http://github.com/spf13/cobra@v1.7.0/command.go:1068) +0x3bd`): their text again. Only a link
/// whose address is its own text (behind `http://` or `https://`, a screen reader's ", Opens in a new window" aside)
/// is unwrapped, so nothing is lost; a link to somewhere else stays as it is.
fn unwrap_autolinks(line: &str) -> std::borrow::Cow<'_, str> {
    const READER_LABEL: &str = ", Opens in a new window";
    if !line.contains("](http") {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find("](") else { break };
        let label = &after[..close];
        let text = label.strip_suffix(READER_LABEL).unwrap_or(label);
        let target = &after[close + 2..];
        let tail = ["http://", "https://"]
            .iter()
            .find_map(|scheme| target.strip_prefix(scheme))
            .and_then(|t| t.strip_prefix(text))
            .and_then(|t| t.strip_prefix(')'))
            .filter(|_| !text.is_empty());
        match tail {
            Some(tail) => {
                out.push_str(&rest[..open]);
                out.push_str(text);
                rest = tail;
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
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

    /// Asserts that `text` parses in `language` to these frames (path, line, function) in its first exception.
    fn assert_frames(text: &str, language: crate::stacktrace::Language, expected: &[(&str, u32, &str)]) {
        let t = crate::stacktrace::parse(text).expect("parses");
        assert_eq!(t.language, language);
        let got: Vec<(&str, u32, &str)> = t.exceptions[0]
            .frames
            .iter()
            .map(|f| (f.path.as_deref().unwrap_or(""), f.line.unwrap_or(0), f.function.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(got, expected);
    }

    /// pulumi/pulumi#13527: a Go panic copied from a web log viewer into an issue, every line behind a line-number
    /// link and every address-like text made a link (with the screen reader's label): the Go trace again.
    #[test]
    fn a_trace_pasted_from_a_log_viewer_loses_its_links() {
        let pasted = concat!(
            "[37](https://devtools-portal.example.net/create/tasks/5f87#line-37)panic: boom\n",
            "[38](https://devtools-portal.example.net/create/tasks/5f87#line-38)[github.com/spf13/cobra.(*Command).ExecuteC, Opens in a new window](http://github.com/spf13/cobra.(*Command).ExecuteC)(0x8b1c240)\n",
            "[39](https://devtools-portal.example.net/create/tasks/5f87#line-39)\t/home/runner/go/pkg/mod/[github.com/spf13/cobra@v1.7.0/command.go:1068, Opens in a new window](http://github.com/spf13/cobra@v1.7.0/command.go:1068) +0x3bd\n",
            "[43](https://devtools-portal.example.net/create/tasks/5f87#line-43)main.main()\n",
            "[44](https://devtools-portal.example.net/create/tasks/5f87#line-44)\t/home/runner/work/pulumi/pulumi/pkg/cmd/pulumi/main.go:56 +0x65\n",
        );
        assert_frames(
            pasted,
            crate::stacktrace::Language::Go,
            &[
                ("/home/runner/go/pkg/mod/github.com/spf13/cobra@v1.7.0/command.go", 1068, "(*Command).ExecuteC"),
                ("/home/runner/work/pulumi/pulumi/pkg/cmd/pulumi/main.go", 56, "main"),
            ],
        );
        // A link to somewhere else is text the trace keeps.
        let other = "see [the docs](https://example.com/docs) and [x](http://y)";
        assert_eq!(unwrap_autolinks(other), other);
    }

    /// The Werkzeug debugger's page, pasted as its HTML (bagarrattaa/email-nuker#11) and as the Markdown GitHub makes
    /// of it (danmou/onenote_export#10): the frames of a Python traceback, the most recent last.
    #[test]
    fn the_werkzeug_debugger_page_is_a_python_traceback() {
        let html = concat!(
            "<li><div class=\"frame\" id=\"frame-140185929449536\">\n",
            "  <h4>File <cite class=\"filename\">\"/usr/local/lib/python3.10/dist-packages/flask/app.py\"</cite>,\n",
            "      line <em class=\"line\">1523</em>,\n",
            "      in <code class=\"function\">full_dispatch_request</code></h4>\n",
            "  <div class=\"source library\"><pre class=\"line before\"><span class=\"ws\">        </span>try:</pre>\n",
            "<pre class=\"line current\"><span class=\"ws\">                </span>rv = self.dispatch_request()</pre>\n",
            "</div>\n</div>\n\n<li><div class=\"frame\" id=\"frame-140185929449648\">\n",
            "  <h4>File <cite class=\"filename\">\"/home/user/app/main.py\"</cite>,\n",
            "      line <em class=\"line\">55</em>,\n",
            "      in <code class=\"function\">&lt;lambda&gt;</code></h4>\n",
        );
        let markdown = concat!(
            "## Traceback _(most recent call last)_\n\n",
            "- #### File \"/venv/lib/python3.8/site-packages/flask/app.py\", line _2464_, in `__call__`\n",
            "        \n        def __call__(self, environ, start_response):\n        \n",
            "        return self.wsgi_app(environ, start_response)\n        \n",
            "- #### File \"/venv/lib/python3.8/site-packages/flask/app.py\", line _2450_, in `wsgi_app`\n",
            "        \n        response = self.full_dispatch_request()\n",
        );
        for (text, expected) in [
            (
                html,
                [
                    ("/usr/local/lib/python3.10/dist-packages/flask/app.py", 1523, "full_dispatch_request"),
                    ("/home/user/app/main.py", 55, "<lambda>"),
                ],
            ),
            (
                markdown,
                [
                    ("/venv/lib/python3.8/site-packages/flask/app.py", 2464, "__call__"),
                    ("/venv/lib/python3.8/site-packages/flask/app.py", 2450, "wsgi_app"),
                ],
            ),
        ] {
            assert_frames(text, crate::stacktrace::Language::Python, &expected);
        }
    }

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

    /// Traces from a Procfile runner (migrs/rack-server-pages#16) and from `heroku logs` (as pasted in many issues)
    /// read as the traces they carry: their paths, and the exception's type.
    #[test]
    fn traces_from_procfile_runners_and_heroku_read_as_traces() {
        let foreman = concat!(
            "09:09:34 web.1  | NoMethodError: undefined method `call' for #<File:public>\n",
            "09:09:34 web.1  | \t/Users/dblock/.rvm/gems/ruby-3.0.5/gems/rack-server-pages-0.1.0/lib/rack/server_pages.rb:46:in `serving'\n",
            "09:09:34 web.1  | \t/Users/dblock/.rvm/gems/ruby-3.0.5/gems/rack-cors-2.0.2/lib/rack/cors.rb:102:in `call'\n",
        );
        assert_frames(
            foreman,
            crate::stacktrace::Language::Ruby,
            &[
                (
                    "/Users/dblock/.rvm/gems/ruby-3.0.5/gems/rack-server-pages-0.1.0/lib/rack/server_pages.rb",
                    46,
                    "serving",
                ),
                ("/Users/dblock/.rvm/gems/ruby-3.0.5/gems/rack-cors-2.0.2/lib/rack/cors.rb", 102, "call"),
            ],
        );
        let heroku = concat!(
            "2020-06-12T13:25:48.023814+00:00 app[web.1]: Traceback (most recent call last):\n",
            "2020-06-12T13:25:48.023837+00:00 app[web.1]:   File \"app.py\", line 1, in <module>\n",
            "2020-06-12T13:25:48.023991+00:00 app[web.1]:     import models\n",
            "2020-06-12T13:25:48.023992+00:00 app[web.1]:   File \"/app/models.py\", line 3, in <module>\n",
            "2020-06-12T13:25:48.023993+00:00 app[web.1]:     from flask_sqlalchemy import SQLAlchemy\n",
            "2020-06-12T13:25:48.023994+00:00 app[web.1]: ModuleNotFoundError: No module named 'flask_sqlalchemy'\n",
        );
        assert_frames(
            heroku,
            crate::stacktrace::Language::Python,
            &[("app.py", 1, "<module>"), ("/app/models.py", 3, "<module>")],
        );
        let t = crate::stacktrace::parse(heroku).expect("parses");
        assert_eq!(t.exceptions[0].ty.as_deref(), Some("ModuleNotFoundError"));
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
            // foreman running a Procfile, as in migrs/rack-server-pages#16.
            (
                "09:09:34 web.1  | \t/Users/dblock/.rvm/gems/ruby-3.0.5/gems/rack-cors-2.0.2/lib/rack/cors.rb:102:in `call'",
                "\t/Users/dblock/.rvm/gems/ruby-3.0.5/gems/rack-cors-2.0.2/lib/rack/cors.rb:102:in `call'",
            ),
            // Heroku's `heroku logs`, as pasted in many issues: its timestamp, then the dyno.
            (
                "2020-06-12T13:25:48.023837+00:00 app[web.1]:   File \"/app/models.py\", line 3, in <module>",
                "  File \"/app/models.py\", line 3, in <module>",
            ),
            (
                "2020-06-12T13:25:48.023994+00:00 app[web.1]: ModuleNotFoundError: No module named 'flask_sqlalchemy'",
                "ModuleNotFoundError: No module named 'flask_sqlalchemy'",
            ),
            // Celery's worker log, as in urllib3/urllib3#2908.
            (
                "[2023-01-31 09:22:12,015: WARNING/MainProcess]   File \"/usr/lib/x.py\", line 1, in f",
                "  File \"/usr/lib/x.py\", line 1, in f",
            ),
            // Home Assistant's log header.
            ("2024-05-01 10:00:00.123 ERROR (MainThread) [homeassistant.core] Error doing job", "Error doing job"),
            // An Open Build Service log around pytest's report, as in kevin1024/vcrpy#427.
            (
                "[   28s] /usr/lib/python3.9/site-packages/requests/sessions.py:542: in request",
                "/usr/lib/python3.9/site-packages/requests/sessions.py:542: in request",
            ),
            ("[ 1234s]     resp = self.send(prep, **send_kwargs)", "    resp = self.send(prep, **send_kwargs)"),
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
