//! The command lists matched against every exec (`[lists] discovery`, `recon`: "prog word..."),
//! indexed by program name once at load: scanning all of their 200 entries, twice per exec,
//! was a tenth of the analysis stage's time in an exec storm. Matching is unchanged
//! (`entry_match`); the index only skips the entries whose program cannot match.

use std::collections::HashMap;

use super::categories::entry_match;

/// One list's entries by program: the literal ones by name, the wildcard ones aside.
#[derive(Debug, Default)]
pub struct CommandIndex {
    /// (area or "", entry text "prog word...") in list order.
    entries: Vec<(String, String)>,
    by_prog: HashMap<String, Vec<usize>>,
    wild: Vec<usize>,
}

impl CommandIndex {
    /// Entries "prog word..." (`areas` false) or "area: prog word..." (`areas` true; an
    /// entry without the colon never matches, as before the index).
    pub fn new(list: &[String], areas: bool) -> CommandIndex {
        let mut ix = CommandIndex::default();
        for e in list {
            let (area, entry) = if areas {
                match e.split_once(':') {
                    Some((a, x)) => (a.trim(), x.trim()),
                    None => continue,
                }
            } else {
                ("", e.as_str())
            };
            // An entry without a program word matches nothing.
            let Some(prog) = entry.split_whitespace().next() else {
                continue;
            };
            let i = ix.entries.len();
            if prog.contains('*') {
                ix.wild.push(i);
            } else {
                ix.by_prog.entry(prog.to_string()).or_default().push(i);
            }
            ix.entries.push((area.to_string(), entry.to_string()));
        }
        ix
    }

    /// The entries (area, text) that match the program `name` and its arguments, in list
    /// order.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        args: &'a [String],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let named = self.by_prog.get(name).map(Vec::as_slice).unwrap_or(&[]);
        // Both index lists are ascending: merged, they keep the list's order.
        let (mut a, mut b) = (named.iter().peekable(), self.wild.iter().peekable());
        std::iter::from_fn(move || match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x < y => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => None,
        })
        .map(|i| &self.entries[*i])
        .filter(move |(_, e)| entry_match(e, name, args))
        .map(|(a, e)| (a.as_str(), e.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The index finds exactly what a scan of the whole list with `entry_match` finds, in the
    /// same order, for literal and wildcard programs and entries without an area.
    #[test]
    fn finds_what_a_full_scan_finds_in_list_order() {
        let list = strings(&[
            "a: grep *audit*",
            "b: ps",
            "no colon here",
            "c: *grep* sentinel",
            "d: grep *falco*",
            "e: ",
            "f: ps aux",
        ]);
        let ix = CommandIndex::new(&list, true);
        let cmds: [(&str, &[&str]); 5] = [
            ("grep", &["-r", "auditd", "sentinel"]),
            ("ps", &["aux"]),
            ("egrep", &["sentinel"]),
            ("ls", &[]),
            ("grep", &["falco"]),
        ];
        for (name, args) in cmds {
            let args = strings(args);
            let scan: Vec<(&str, &str)> = list
                .iter()
                .filter_map(|e| e.split_once(':').map(|(a, x)| (a.trim(), x.trim())))
                .filter(|(_, x)| entry_match(x, name, &args))
                .collect();
            let got: Vec<(&str, &str)> = ix.matching(name, &args).collect();
            assert_eq!(got, scan, "{name} {args:?}");
        }
        let plain = CommandIndex::new(&strings(&["id", "find -perm*", "*id"]), false);
        let got: Vec<&str> = plain.matching("id", &[]).map(|(_, e)| e).collect();
        assert_eq!(got, ["id", "*id"]);
        assert!(
            plain
                .matching("find", &strings(&["/", "-perm", "-4000"]))
                .any(|(_, e)| e == "find -perm*")
        );
    }
}
