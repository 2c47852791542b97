//! `sentinel config check [FILE]`: every error of a configuration file with its line and
//! column. TOML and type errors come with their place from the parser; after each, the
//! offending entry is blanked out (lines and columns kept) and the file read again, so one
//! run shows them all. Checks of values (`validate`) name their key, which is then looked up
//! in the file.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_PATH};

/// One problem, at a byte range of the file when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// At most this many problems are reported (then the rest is noise from the first ones).
const MAX_PROBLEMS: usize = 50;

/// Checks `file` (default: the system path) and prints the verdict; returns the exit code.
pub fn run(file: Option<PathBuf>) -> i32 {
    let (path, explicit) = match file {
        Some(p) => (p, true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "{}: no such file; every default applies (`sentinel config default`)",
                path.display()
            );
            return crate::exit::OK;
        }
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return crate::exit::ERROR;
        }
    };
    let problems = check(&text);
    if problems.is_empty() {
        println!("{}: ok", path.display());
        return crate::exit::OK;
    }
    for p in &problems {
        eprint!("{}", render(&path, &text, p));
    }
    eprintln!(
        "{}: {} error{}",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    crate::exit::ERROR
}

/// 1-based line and column (in characters) of byte `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..text.floor_char_boundary(at)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// `FILE:LINE:COL: message`, then the line with a caret under the place.
pub fn render(path: &Path, text: &str, p: &Problem) -> String {
    let Some(span) = &p.span else {
        return format!("{}: {}\n", path.display(), p.message);
    };
    let (line, col) = line_col(text, span.start);
    let src = text.lines().nth(line - 1).unwrap_or("");
    let width = text
        .get(span.clone())
        .map(|s| s.lines().next().unwrap_or("").chars().count())
        .unwrap_or(1)
        .max(1);
    format!(
        "{}:{line}:{col}: {}\n{line:>5} | {src}\n      | {}{}\n",
        path.display(),
        p.message,
        " ".repeat(col - 1),
        "^".repeat(width)
    )
}

/// Every problem in `text`, in the order found.
pub fn check(text: &str) -> Vec<Problem> {
    // Syntax first: a file that is not TOML has one place to fix before anything else.
    if let Err(e) = text.parse::<toml_edit::ImDocument<String>>() {
        return vec![Problem {
            span: e.span(),
            message: e.message().trim().to_string(),
        }];
    }
    let mut work = text.to_string();
    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        match toml::from_str::<Config>(&work) {
            Ok(cfg) => {
                problems.extend(cfg.problems().into_iter().map(|message| Problem {
                    span: locate(text, &message),
                    message,
                }));
                break;
            }
            Err(e) => {
                let span = e.span();
                problems.push(Problem {
                    span: span.clone(),
                    message: e.message().trim().to_string(),
                });
                // Blank the entry out and read again; stop when that cannot make progress.
                match span.and_then(|s| entry_at(&work, s.start)) {
                    Some(r) if !work[r.clone()].trim().is_empty() => blank(&mut work, r),
                    _ => break,
                }
            }
        }
    }
    problems
}

/// Replaces a range with spaces, keeping line breaks: later places stay where they were.
fn blank(text: &mut String, r: Range<usize>) {
    let replaced: String = text[r.clone()]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    text.replace_range(r, &replaced);
}

/// The byte range of the innermost entry at `at`: a `key = value` line, or a whole table
/// (header and body) when `at` is in its header.
fn entry_at(text: &str, at: usize) -> Option<Range<usize>> {
    let doc: toml_edit::ImDocument<&str> = toml_edit::ImDocument::parse(text).ok()?;
    let mut best: Option<Range<usize>> = None;
    let mut consider = |r: Range<usize>| {
        if r.contains(&at) && best.as_ref().is_none_or(|b| r.len() < b.len()) {
            best = Some(r);
        }
    };
    fn walk(t: &toml_edit::Table, consider: &mut dyn FnMut(Range<usize>)) -> Option<usize> {
        let mut end = None::<usize>;
        for (k, item) in t.iter() {
            let key = t.key(k).and_then(|k| k.span());
            let r = match item {
                toml_edit::Item::Value(v) => match (key, v.span()) {
                    (Some(k), Some(v)) => Some(k.start..v.end),
                    _ => None,
                },
                toml_edit::Item::Table(sub) => {
                    let body_end = walk(sub, consider);
                    sub.span()
                        .map(|h| h.start..body_end.unwrap_or(h.end).max(h.end))
                }
                toml_edit::Item::ArrayOfTables(a) => {
                    for sub in a.iter() {
                        let body_end = walk(sub, consider);
                        if let Some(h) = sub.span() {
                            consider(h.start..body_end.unwrap_or(h.end).max(h.end));
                        }
                    }
                    None
                }
                toml_edit::Item::None => None,
            };
            if let Some(r) = r {
                end = Some(end.map_or(r.end, |e| e.max(r.end)));
                consider(r);
            }
        }
        end
    }
    walk(doc.as_table(), &mut consider);
    best.or_else(|| {
        // Not inside a known entry: the line itself.
        let start = text[..text.floor_char_boundary(at)]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        Some(start..end)
    })
}

/// Where a value check's message points: the first dotted key path it names that is in the
/// file (`detect.window_secs must be ...`), else a key named alone that the file has once.
fn locate(text: &str, message: &str) -> Option<Range<usize>> {
    let doc: toml_edit::ImDocument<&str> = toml_edit::ImDocument::parse(text).ok()?;
    let words: Vec<&str> = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .collect();
    for w in words.iter().filter(|w| w.contains('.')) {
        let mut t: &dyn toml_edit::TableLike = doc.as_table();
        let mut parts = w.split('.').peekable();
        while let Some(part) = parts.next() {
            let Some((key, item)) = t.get_key_value(part) else {
                break;
            };
            // A list of tables: the next part is the entry's index (`output.1.address`).
            if let Some(list) = item.as_array_of_tables() {
                let Some(entry) = parts
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| list.get(n))
                else {
                    break;
                };
                if parts.peek().is_none() {
                    return entry.span();
                }
                t = entry;
                continue;
            }
            if parts.peek().is_none() {
                return key.span().or_else(|| item.span());
            }
            match item.as_table_like() {
                Some(sub) => t = sub,
                None => break,
            }
        }
    }
    // A bare key name ("exec_env"): the file's only key of that name.
    for w in words.iter().filter(|w| w.contains('_')) {
        let mut found = Vec::new();
        fn find(t: &dyn toml_edit::TableLike, name: &str, found: &mut Vec<Range<usize>>) {
            for (k, item) in t.iter() {
                if k == name
                    && let Some(s) = t.get_key_value(k).and_then(|(key, _)| key.span())
                {
                    found.push(s);
                }
                if let Some(sub) = item.as_table_like() {
                    find(sub, name, found);
                }
            }
        }
        find(doc.as_table(), w, &mut found);
        if let [one] = found.as_slice() {
            return Some(one.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(text: &str) -> Vec<(usize, usize, String)> {
        check(text)
            .into_iter()
            .map(|p| {
                let (l, c) = p.span.map(|s| line_col(text, s.start)).unwrap_or((0, 0));
                (l, c, p.message)
            })
            .collect()
    }

    #[test]
    fn a_valid_file_and_the_printed_default_have_no_problems() {
        assert!(check("").is_empty());
        assert!(check("[detect.weights]\nptrace = 10\n").is_empty());
        assert!(check(&super::super::default_toml()).is_empty());
    }

    #[test]
    fn a_syntax_error_is_placed() {
        let p = places("store = \"/x\"\n[detect\nwindow_secs = 60\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, 2, "{p:?}");
    }

    #[test]
    fn every_type_error_and_unknown_key_is_placed() {
        let text = "store = \"/x\"\nbogus = 1\n\n[detect]\nwindow_secs = \"five\"\n\
                    [detect.weights]\nptrace = 300\nnot_a_detection = 3\n[nonsense]\na = 1\n";
        let p = places(text);
        let lines: Vec<usize> = p.iter().map(|x| x.0).collect();
        assert_eq!(lines, [2, 5, 7, 8, 9], "{p:#?}");
        assert!(p[0].2.contains("bogus"), "{p:?}");
        assert_eq!(p[0].1, 1, "column of `bogus`");
        assert_eq!(p[1].1, 15, "column of the value: {p:?}");
    }

    #[test]
    fn checks_of_list_entries_point_at_the_entry_s_key() {
        let text = "store = \"/x\"\n[[output]]\nkind = \"file\"\npath = \"/v/a\"\n\
                    [[output]]\nkind = \"syslog\"\ntransport = \"udp\"\naddress = \"nohost\"\n";
        let p = places(text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].0, p[0].1), (8, 1), "{p:?}");
        assert!(p[0].2.contains("output.1.address"), "{p:?}");
    }

    #[test]
    fn value_checks_point_at_the_key_they_name() {
        let text = "store = \"/x\"\n[detect]\nlearn_below_score = 50\nwindow_secs = 1\n";
        let p = places(text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].0, p[0].1), (4, 1), "{p:?}");
        assert!(p[0].2.contains("window_secs"), "{p:?}");
        // Two sections wrong at once: both reported.
        let text = "[detect]\nwindow_secs = 1\n[snapshot]\ninterval_secs = 0\n";
        let p = places(text);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].0, 2, "{p:?}");
    }

    /// Damaged files (a character replaced here and there in the default) give problems
    /// placed inside the text, never a panic.
    #[test]
    fn damaged_files_are_reported_not_panicked_on() {
        let text = super::super::default_toml();
        let mut reported = 0;
        for (n, at) in (0..text.len()).step_by(89).enumerate() {
            if !text.is_char_boundary(at) {
                continue;
            }
            let with = ["[", "\"", "=", "\u{e9}", "\n", "x", "]]"][n % 7];
            let mut t = text.clone();
            let end = t[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            t.replace_range(at..end, with);
            for p in check(&t) {
                reported += 1;
                if let Some(s) = &p.span {
                    assert!(s.start <= t.len(), "{s:?} outside the text");
                }
                let _ = render(Path::new("x.toml"), &t, &p);
            }
        }
        assert!(reported > 10, "{reported} problems in damaged files");
    }

    #[test]
    fn the_rendered_problem_shows_the_line_and_a_caret() {
        let text = "a = 1\nbogus = 2\n";
        let p = check(text).remove(0);
        let r = render(Path::new("s.toml"), text, &p);
        assert!(r.starts_with("s.toml:1:1: "), "{r}");
        let text = "store = \"/x\"\nbogus = 2\n";
        let p = check(text).remove(0);
        let r = render(Path::new("s.toml"), text, &p);
        assert!(r.starts_with("s.toml:2:1: unknown field `bogus`"), "{r}");
        assert!(r.contains("    2 | bogus = 2\n      | ^^^^^"), "{r}");
    }
}
