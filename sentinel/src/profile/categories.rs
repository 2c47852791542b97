//! File categories and program lists as data: parsed from a TOML file (defaults shipped in
//! the binary from categories.toml, overridable with `detect.categories_file`). Documented
//! in docs/categories.md.

use serde::Deserialize;

use crate::proc::users::UserDb;

pub const DEFAULT_TOML: &str = include_str!("categories.toml");

/// The computed category for paths inside another user's home directory.
pub const OTHER_HOME: &str = "other_home";

#[derive(Debug, thiserror::Error)]
pub enum CategoriesError {
    #[error("categories file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("categories file {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("categories file {path}: {msg}")]
    Invalid { path: String, msg: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCategory {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    credential: bool,
    paths: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

/// Program lists (docs/categories.md). An entry is a base name ("sudo", "php-fpm*") or a path
/// pattern ("/usr/*bin/sudo", "~/.cargo/bin/*"). Lists that name what a program may do
/// (exemptions) accept a base-name entry only for an executable in one of `system_dirs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lists {
    pub writable_exec_dirs: Vec<String>,
    /// Root-owned program directories: base-name entries of exemption lists match only
    /// executables below one of these.
    pub system_dirs: Vec<String>,
    pub shells: Vec<String>,
    pub network_services: Vec<String>,
    pub credential_readers: Vec<String>,
    pub setuid_helpers: Vec<String>,
    pub switch_user: Vec<String>,
    pub package_managers: Vec<String>,
    pub log_maintainers: Vec<String>,
    pub account_tools: Vec<String>,
    pub debuggers: Vec<String>,
    pub system_bpf: Vec<String>,
    pub module_tools: Vec<String>,
    pub discovery: Vec<String>,
    /// Entries `"category: prog word..."`: which discovery area a command explores
    /// (`recon_breadth`).
    pub recon: Vec<String>,
    /// Entries `"category: /path/glob"`: files and directories whose reading explores a
    /// discovery area (`recon_breadth`, `targeted_discovery`).
    pub recon_files: Vec<String>,
    /// Compilers and linkers: a file they wrote and that is then run was built (provenance).
    pub compilers: Vec<String>,
    /// Archive extractors (provenance: "unpacked by").
    pub extractors: Vec<String>,
    /// Programs that fetch files from elsewhere (provenance: "downloaded by"), besides any
    /// writer that had connected to the network.
    pub downloaders: Vec<String>,
}

/// Used when a categories file has no `system_dirs`: an empty list would exempt nothing.
fn default_system_dirs() -> Vec<String> {
    [
        "/usr/bin/",
        "/usr/sbin/",
        "/bin/",
        "/sbin/",
        "/usr/local/bin/",
        "/usr/local/sbin/",
        "/usr/lib/",
        "/usr/lib64/",
        "/usr/libexec/",
        "/lib/",
        "/lib64/",
    ]
    .map(String::from)
    .to_vec()
}

impl Default for Lists {
    fn default() -> Lists {
        Lists {
            writable_exec_dirs: Vec::new(),
            system_dirs: default_system_dirs(),
            shells: Vec::new(),
            network_services: Vec::new(),
            credential_readers: Vec::new(),
            setuid_helpers: Vec::new(),
            switch_user: Vec::new(),
            package_managers: Vec::new(),
            log_maintainers: Vec::new(),
            account_tools: Vec::new(),
            debuggers: Vec::new(),
            system_bpf: Vec::new(),
            module_tools: Vec::new(),
            discovery: Vec::new(),
            recon: Vec::new(),
            recon_files: Vec::new(),
            compilers: Vec::new(),
            extractors: Vec::new(),
            downloaders: Vec::new(),
        }
    }
}

impl Lists {
    /// Expands "~/" path entries of the program lists into /root/ and /home/*/ once at load.
    fn expand_homes(&mut self) {
        for l in [
            &mut self.shells,
            &mut self.network_services,
            &mut self.credential_readers,
            &mut self.setuid_helpers,
            &mut self.switch_user,
            &mut self.package_managers,
            &mut self.log_maintainers,
            &mut self.account_tools,
            &mut self.debuggers,
            &mut self.system_bpf,
            &mut self.module_tools,
            &mut self.compilers,
            &mut self.extractors,
            &mut self.downloaders,
        ] {
            *l = l.iter().flat_map(|e| expand(e)).collect();
        }
    }

    /// Every program-list entry that is a path must be absolute (or start with "~/").
    fn check(&self) -> Result<(), String> {
        let named = [
            ("shells", &self.shells),
            ("network_services", &self.network_services),
            ("credential_readers", &self.credential_readers),
            ("setuid_helpers", &self.setuid_helpers),
            ("switch_user", &self.switch_user),
            ("package_managers", &self.package_managers),
            ("log_maintainers", &self.log_maintainers),
            ("account_tools", &self.account_tools),
            ("debuggers", &self.debuggers),
            ("system_bpf", &self.system_bpf),
            ("module_tools", &self.module_tools),
            ("compilers", &self.compilers),
            ("extractors", &self.extractors),
            ("downloaders", &self.downloaders),
        ];
        for (name, list) in named {
            if let Some(e) = list.iter().find(|e| {
                e.is_empty() || (e.contains('/') && !(e.starts_with('/') || e.starts_with("~/")))
            }) {
                return Err(format!(
                    "lists.{name}: entry {e:?} must be a base name or a path starting with / or ~/"
                ));
            }
        }
        if let Some(d) = self.system_dirs.iter().find(|d| !d.starts_with('/')) {
            return Err(format!("lists.system_dirs: {d:?} must start with /"));
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    category: Vec<FileCategory>,
    #[serde(default)]
    lists: Lists,
}

#[derive(Clone, Debug)]
pub struct Category {
    pub name: String,
    pub description: String,
    pub credential: bool,
    /// Patterns with "~/" and trailing "/" expanded once at load (see `expand`).
    paths: Vec<String>,
    exclude: Vec<String>,
}

/// Expands a pattern into plain wildcard patterns: "~/" into /root/ and /home/*/, and a
/// directory "x/" into "x" and "x/**", so matching allocates nothing.
fn expand(pattern: &str) -> Vec<String> {
    let homes: Vec<String> = match pattern.strip_prefix("~/") {
        Some(rest) => vec![format!("/root/{rest}"), format!("/home/*/{rest}")],
        None => vec![pattern.to_string()],
    };
    homes
        .into_iter()
        .flat_map(|p| {
            if p.ends_with('/') {
                vec![p.trim_end_matches('/').to_string(), format!("{p}**")]
            } else {
                vec![p]
            }
        })
        .collect()
}

#[derive(Debug)]
pub struct Categories {
    pub categories: Vec<Category>,
    pub lists: Lists,
    /// Which category's patterns each recently seen path matched: the same paths come back
    /// constantly (an open storm, a daemon's config), and matching every pattern of every
    /// category was the analysis stage's largest cost.
    matched: std::sync::Mutex<std::collections::HashMap<String, Option<usize>>>,
    /// `lists.discovery` and `lists.recon` by program name (matched at every exec).
    discovery_ix: super::commands::CommandIndex,
    recon_ix: super::commands::CommandIndex,
}

/// Paths remembered by `Categories::matched` before it starts over.
const MATCH_CACHE: usize = 8192;

impl Clone for Categories {
    fn clone(&self) -> Categories {
        Categories::new(self.categories.clone(), self.lists.clone())
    }
}

impl Categories {
    pub fn defaults() -> Categories {
        // The shipped file is tested below; failing here would be a build defect.
        Categories::parse(DEFAULT_TOML, "<built-in>").unwrap_or_else(|e| {
            tracing::error!("{e}");
            Categories::new(Vec::new(), Lists::default())
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Categories, CategoriesError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CategoriesError::Read {
            path: p.clone(),
            source,
        })?;
        Categories::parse(&text, &p)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Categories, CategoriesError> {
        let f: File = toml::from_str(text).map_err(|e| CategoriesError::Parse {
            path: origin.to_string(),
            source: Box::new(e),
        })?;
        let invalid = |msg: String| CategoriesError::Invalid {
            path: origin.to_string(),
            msg,
        };
        let mut categories = Vec::new();
        for c in f.category {
            if c.name.is_empty() || c.name == OTHER_HOME {
                return Err(invalid(format!(
                    "category name {:?} is reserved or empty",
                    c.name
                )));
            }
            if let Some(p) = c
                .paths
                .iter()
                .chain(&c.exclude)
                .find(|p| !(p.starts_with('/') || p.starts_with("~/")))
            {
                return Err(invalid(format!(
                    "category {}: pattern {p:?} must start with / or ~/",
                    c.name
                )));
            }
            categories.push(Category {
                name: c.name,
                description: c.description,
                credential: c.credential,
                paths: c.paths.iter().flat_map(|p| expand(p)).collect(),
                exclude: c.exclude.iter().flat_map(|p| expand(p)).collect(),
            });
        }
        let mut lists = f.lists;
        lists.check().map_err(invalid)?;
        lists.expand_homes();
        Ok(Categories::new(categories, lists))
    }

    fn new(categories: Vec<Category>, lists: Lists) -> Categories {
        Categories {
            discovery_ix: super::commands::CommandIndex::new(&lists.discovery, false),
            recon_ix: super::commands::CommandIndex::new(&lists.recon, true),
            categories,
            lists,
            matched: Default::default(),
        }
    }

    /// The `recon` entries ("area: prog word...") a command matches, as (area, entry), in
    /// list order.
    pub fn recon_matches<'a>(
        &'a self,
        name: &'a str,
        args: &'a [String],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.recon_ix.matching(name, args)
    }

    /// The index of the first category whose patterns match `path` (and no exclusion does).
    fn matching(&self, path: &str) -> Option<usize> {
        let m = |p: &String| glob(p.as_bytes(), path.as_bytes(), true);
        let find = || {
            self.categories
                .iter()
                .position(|c| c.paths.iter().any(m) && !c.exclude.iter().any(m))
        };
        // A poisoned lock only means another thread panicked mid-insert: the map is usable.
        let mut cache = self.matched.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(path) {
            return *hit;
        }
        let found = find();
        if cache.len() >= MATCH_CACHE {
            cache.clear();
        }
        cache.insert(path.to_string(), found);
        found
    }

    /// The category of `path` as seen by `principal`: the first listed category that
    /// matches, else "other_home" for another user's home directory, else None.
    pub fn categorize(&self, path: &str, principal: u32, users: &UserDb) -> Option<&str> {
        if let Some(c) = self.matching(path).and_then(|i| self.categories.get(i)) {
            return Some(&c.name);
        }
        match users.home_owner(path) {
            Some(owner) if owner != principal => Some(OTHER_HOME),
            _ => None,
        }
    }

    pub fn is_credential(&self, category: &str) -> bool {
        self.categories
            .iter()
            .any(|c| c.name == category && c.credential)
    }

    pub fn description(&self, category: &str) -> &str {
        if category == OTHER_HOME {
            return "another user's home directory";
        }
        self.categories
            .iter()
            .find(|c| c.name == category)
            .map(|c| c.description.as_str())
            .unwrap_or("")
    }
}

/// Is `name` (a base name) in `list` (entries may contain "*")? Path entries never match a
/// bare name.
pub fn in_list(list: &[String], name: &str) -> bool {
    list.iter()
        .any(|p| glob(p.as_bytes(), name.as_bytes(), false))
}

/// Does a list that names what to look for (shells, services, discovery tools...) name this
/// program? Path entries match the executable's full path; base-name entries its base name
/// wherever it lives (a copy of nmap in /tmp is still nmap), or `comm` when the executable is
/// unknown.
pub fn lists_program(list: &[String], exe: &str, comm: &str) -> bool {
    let name = if exe.is_empty() {
        comm
    } else {
        crate::proc::basename(exe)
    };
    list.iter().any(|p| {
        if p.starts_with('/') {
            glob(p.as_bytes(), exe.as_bytes(), true)
        } else {
            glob(p.as_bytes(), name.as_bytes(), false)
        }
    })
}

impl Categories {
    /// Does an exemption list (credential readers, package managers, log maintainers, BPF
    /// users...) name this program? Path entries match the full path; a base-name entry only
    /// an executable inside one of `system_dirs`, so that /tmp/sudo or ~/bin/dpkg is never
    /// exempt. An unknown executable (a process older than Sentinel whose exe could not be
    /// read) is matched by `comm`.
    pub fn exempt(&self, list: &[String], exe: &str, comm: &str) -> bool {
        if exe.is_empty() {
            return in_list(list, comm);
        }
        let in_system = self.in_system_dir(exe);
        let name = crate::proc::basename(exe);
        list.iter().any(|p| {
            if p.starts_with('/') {
                glob(p.as_bytes(), exe.as_bytes(), true)
            } else {
                in_system && glob(p.as_bytes(), name.as_bytes(), false)
            }
        })
    }

    /// Is `exe` below one of the root-owned program directories (`lists.system_dirs`)?
    pub fn in_system_dir(&self, exe: &str) -> bool {
        self.lists
            .system_dirs
            .iter()
            .any(|d| exe.starts_with(d.as_str()) && !exe.contains("/../"))
    }
}

/// Does `argv` (program base name plus arguments) match a discovery entry like "find -perm*"?
pub fn discovery_match<'a>(list: &'a [String], name: &str, args: &[String]) -> Option<&'a str> {
    list.iter()
        .find(|entry| entry_match(entry, name, args))
        .map(String::as_str)
}

/// Does one entry "prog word..." match the program's base name and its arguments?
pub fn entry_match(entry: &str, name: &str, args: &[String]) -> bool {
    let mut words = entry.split_whitespace();
    let Some(prog) = words.next() else {
        return false;
    };
    glob(prog.as_bytes(), name.as_bytes(), false)
        && words.all(|w| args.iter().any(|a| glob(w.as_bytes(), a.as_bytes(), false)))
}

impl Categories {
    /// The discovery entries one command counts as (`discovery_burst`): one "read PATH"
    /// for every absolute operand that names a file describing the host (`recon_files`),
    /// whatever program reads it (`cat`, `head`, `awk -F:`, `grep`, a renamed copy: the act
    /// is reading the file); otherwise the `discovery` list entry the command matches, or
    /// else the `recon` entry (every command that explores a discovery area is one:
    /// `lsblk`, `dpkg -l`, `systemctl list-timers`).
    pub fn discovery_entries(&self, name: &str, args: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in args {
            if a.starts_with('/') && !self.recon_file_areas(a).is_empty() {
                let e = format!("read {}", a.trim_end_matches('/'));
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        if !out.is_empty() {
            return out;
        }
        if let Some((_, d)) = self.discovery_ix.matching(name, args).next() {
            out.push(d.to_string());
        } else if let Some((_, e)) = self.recon_matches(name, args).next() {
            out.push(e.to_string());
        }
        out
    }

    /// The discovery areas whose `recon_files` patterns match `path` ("*" within a component,
    /// "**" across). The patterns' fixed prefixes are checked first: most opens match none.
    pub fn recon_file_areas(&self, path: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.lists.recon_files {
            let Some((area, pat)) = e.split_once(':') else {
                continue;
            };
            let (area, pat) = (area.trim(), pat.trim());
            let fixed = pat.split('*').next().unwrap_or("");
            if path.starts_with(fixed)
                && glob(pat.as_bytes(), path.as_bytes(), true)
                && !out.iter().any(|a| a == area)
            {
                out.push(area.to_string());
            }
        }
        out
    }
}

/// Wildcard match: "*" is any run of bytes (not crossing "/" when `slash` is true),
/// "**" any run of bytes at all.
fn glob(p: &[u8], s: &[u8], slash: bool) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => {
            let double = p.get(1) == Some(&b'*');
            let rest = if double { &p[2..] } else { &p[1..] };
            let crosses = double || !slash;
            for i in 0..=s.len() {
                if glob(rest, &s[i..], slash) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' && !crosses {
                    return false;
                }
            }
            false
        }
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..], slash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> UserDb {
        UserDb::parse(
            "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n",
        )
    }

    #[test]
    fn shipped_file_parses_and_categorizes() {
        let c = Categories::parse(DEFAULT_TOML, "t").unwrap();
        let u = users();
        let cat = |p: &str| c.categorize(p, 1000, &u);
        assert_eq!(cat("/etc/shadow"), Some("credentials"));
        assert_eq!(cat("/etc/sudoers.d/90-cloud"), Some("credentials"));
        assert_eq!(cat("/home/alice/.ssh/id_ed25519"), Some("ssh_keys"));
        assert_eq!(cat("/home/alice/.ssh/id_ed25519.pub"), None);
        assert_eq!(cat("/home/alice/.ssh/authorized_keys"), Some("persistence"));
        assert_eq!(cat("/root/.bashrc"), Some("persistence"));
        assert_eq!(cat("/etc/cron.d/x"), Some("persistence"));
        assert_eq!(cat("/etc/passwd"), Some("accounts"));
        assert_eq!(cat("/var/log/auth.log"), Some("logs"));
        assert_eq!(cat("/etc/hosts"), Some("system_config"));
        assert_eq!(cat("/tmp/x"), Some("world_writable"));
        assert_eq!(cat("/home/bob/notes.txt"), Some(OTHER_HOME));
        assert_eq!(cat("/home/alice/notes.txt"), None);
        assert_eq!(
            cat("/home/alice/.config/gcloud/a/b.json"),
            Some("cloud_credentials")
        );
        assert_eq!(cat("/usr/bin/ls"), None);
        assert_eq!(
            cat("/srv/app/.git/hooks/post-checkout"),
            Some("persistence")
        );
        assert_eq!(cat("/home/alice/p/.git/hooks/pre-commit.sample"), None);
        assert_eq!(
            cat("/home/alice/.local/lib/python3.11/site-packages/zz.pth"),
            Some("persistence")
        );
        assert!(c.is_credential("ssh_keys") && !c.is_credential("logs"));
        assert!(in_list(&c.lists.network_services, "php-fpm8.2"));
        assert!(!in_list(&c.lists.shells, "bashx"));
    }

    #[test]
    fn discovery_entries_need_their_arguments() {
        let c = Categories::defaults();
        let d = &c.lists.discovery;
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(discovery_match(d, "id", &a(&[])), Some("id"));
        assert_eq!(
            discovery_match(d, "find", &a(&["/", "-perm", "-4000"])),
            Some("find -perm*")
        );
        assert_eq!(discovery_match(d, "find", &a(&[".", "-name", "x"])), None);
        assert_eq!(
            discovery_match(d, "cat", &a(&["/etc/passwd"])),
            Some("cat /etc/passwd")
        );
        assert_eq!(discovery_match(d, "cat", &a(&["README"])), None);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let e = Categories::parse("[[category]]\nname='x'\npaths=['etc']\n", "f.toml").unwrap_err();
        assert!(e.to_string().contains("must start with"), "{e}");
        let e =
            Categories::parse("[[category]]\nname='x'\npaths=[]\nbogus=1\n", "f.toml").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }
}
