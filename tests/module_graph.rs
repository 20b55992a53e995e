//! Dependencies run one way (STYLE.md, "Layout"): no import circle between the library's
//! top-level modules, and none between the sibling files of one directory module.
//!
//! The graph is read from the source text, not from the compiler: every `.rs` file under
//! `src/` except `src/bin/` (the binary, a separate consumer of the public API). The
//! `test-util` kit (`src/test_util.rs`) is part of the library behind a feature, so it
//! counts like any other module. Items gated by `#[cfg(test)]` (unit tests beside the
//! code) are skipped: they are not part of the library a user builds.
//!
//! A use is any path that starts with `crate::`, `super::`, `self::` or the name of a
//! child module, in `use` declarations (groups, `self`, renames and globs included) and in
//! expressions and types (`crate::metrics::decision(..)`). Comments, doc comments, string
//! and character literals are skipped. A path through a re-export (`pub use`,
//! `pub(crate) use`, a private `use` a child can see) is followed to the module that
//! defines the item. A module's use of its own descendants or ancestors is not an edge, so
//! the re-exports of `lib.rs` and of each `mod.rs` do not count.
//!
//! `cargo test --test module_graph module_graph_is_printed -- --nocapture` prints the
//! graph; the README's "how the crate is built" is drawn from its top-level part.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Edges known to close a circle and being removed elsewhere: (the directory module,
/// `crate` for the top level; the module that uses; the module it uses). They are printed
/// with the graph but left out of the check. None today.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// A module path from the crate root: `["keys", "remote", "set"]`; the root is `[]`.
type ModPath = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// The tokens of a source file without comments, strings and character literals.
fn lex(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_start = |c: u8| c == b'_' || c.is_ascii_alphabetic();
    let ident_cont = |c: u8| c == b'_' || c.is_ascii_alphanumeric();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(b, i) {
            i = end;
        } else if c == b'"' || ((c == b'b' || c == b'c') && b.get(i + 1) == Some(&b'"')) {
            i += if c == b'"' { 1 } else { 2 };
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == b'\'' || (c == b'b' && b.get(i + 1) == Some(&b'\'')) {
            // A character literal ('a', '\n', '\u{1F600}', b'x') or a lifetime ('a, 'static).
            let start = if c == b'b' { i + 2 } else { i + 1 };
            if b.get(start) == Some(&b'\\') {
                let mut j = start + 1;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
            } else {
                let ch_len = src[start..].chars().next().map_or(1, char::len_utf8);
                if b.get(start + ch_len) == Some(&b'\'') {
                    i = start + ch_len + 1;
                } else {
                    // A lifetime: skip the quote, the name follows as an identifier.
                    i += 1;
                    while i < b.len() && ident_cont(b[i]) {
                        i += 1;
                    }
                }
            }
        } else if ident_start(c) {
            let start = i;
            while i < b.len() && ident_cont(b[i]) {
                i += 1;
            }
            if b.get(i) == Some(&b'#') && &src[start..i] == "r" {
                // r#ident
                i += 1;
                let s = i;
                while i < b.len() && ident_cont(b[i]) {
                    i += 1;
                }
                out.push(Tok::Ident(src[s..i].to_string()));
            } else {
                out.push(Tok::Ident(src[start..i].to_string()));
            }
        } else if c.is_ascii_digit() {
            while i < b.len()
                && (ident_cont(b[i])
                    || b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                i += 1;
            }
        } else if b[i..].starts_with(b"::") {
            out.push(Tok::Path);
            i += 2;
        } else if c == b'$' && src[i + 1..].starts_with("crate") {
            // `$crate` in a macro body is the crate root.
            i += 1;
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(Tok::Punct(ch));
            i += ch.len_utf8();
        }
    }
    out
}

/// The end of a raw (byte, C) string literal starting at `i`, if one starts there.
fn raw_string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(b[j], b'b' | b'c') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') || (i > 0 && is_ident_byte(b[i - 1])) {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    if b.get(j) != Some(&b'"') {
        return None;
    }
    j += 1;
    loop {
        if j >= b.len() {
            return Some(j);
        }
        if b[j] == b'"'
            && b[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == b'#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
}

fn is_ident_byte(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

fn is_ident(t: Option<&Tok>, word: &str) -> bool {
    matches!(t, Some(Tok::Ident(w)) if w == word)
}

/// What one file says: the paths it uses and the names its modules import and define.
#[derive(Default)]
struct Scan {
    /// (the module at the use, the path as written, absolute once `crate`/`super`/`self`
    /// are resolved).
    uses: Vec<(ModPath, ModPath)>,
}

/// The crate as read: every module (file or inline), the names each imports (name ->
/// absolute path), its globs, the items it defines, and every use.
#[derive(Default)]
struct Crate {
    /// Module -> the file module holding it (an inline module maps to its file's module).
    modules: BTreeMap<ModPath, ModPath>,
    imports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    globs: BTreeMap<ModPath, Vec<ModPath>>,
    defines: BTreeMap<ModPath, BTreeSet<String>>,
    /// (the file module that uses, the absolute path it uses).
    uses: Vec<(ModPath, ModPath)>,
}

const ITEM_KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "union", "trait", "type", "const", "static",
];

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    file_mod: ModPath,
    krate: &'a mut Crate,
    scan: Scan,
}

impl Parser<'_> {
    fn peek(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.pos + k)
    }

    /// Resolves the leading `crate`/`super`/`self`/child-module segments of a path written
    /// in module `here`, from the token at `self.pos`. Returns the absolute prefix and the
    /// number of tokens consumed by the prefix, or None when the path is not ours.
    fn path_root(&self, here: &ModPath, at: usize) -> Option<(ModPath, usize)> {
        let mut abs = here.clone();
        let mut k = at;
        match self.toks.get(k) {
            Some(Tok::Ident(w)) if w == "crate" || w == "$crate" => {
                abs.clear();
                k += 1;
            }
            Some(Tok::Ident(w)) if w == "self" => k += 1,
            Some(Tok::Ident(w)) if w == "super" => {
                while is_ident(self.toks.get(k), "super") {
                    abs.pop()?;
                    k += 1;
                    if self.toks.get(k) == Some(&Tok::Path)
                        && is_ident(self.toks.get(k + 1), "super")
                    {
                        k += 1;
                    }
                }
            }
            Some(Tok::Ident(w)) => {
                // A path from a child module of `here` (2018 paths: `builder::X` in mod.rs).
                let mut child = here.clone();
                child.push(w.clone());
                if !self.krate.modules.contains_key(&child) {
                    return None;
                }
                return Some((here.clone(), 0));
            }
            _ => return None,
        }
        Some((abs, k - at))
    }

    /// Reads `a::b::c` from `at`, stopping before `::{`, `::*`, `::<` or anything else.
    fn segments(&self, mut k: usize) -> (Vec<String>, usize) {
        let mut segs = Vec::new();
        if self.toks.get(k) == Some(&Tok::Path) {
            k += 1;
        } else if !matches!(self.toks.get(k), Some(Tok::Ident(_))) {
            return (segs, k);
        }
        while let Some(Tok::Ident(w)) = self.toks.get(k) {
            if w == "as" || w == "self" {
                break;
            }
            segs.push(w.clone());
            k += 1;
            if self.toks.get(k) == Some(&Tok::Path)
                && matches!(self.toks.get(k + 1), Some(Tok::Ident(n)) if n != "self")
            {
                k += 1;
            } else {
                break;
            }
        }
        (segs, k)
    }

    fn run(&mut self) {
        // Inline module stack: (name, brace depth at its `{`).
        let mut stack: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        while self.pos < self.toks.len() {
            let here: ModPath = self
                .file_mod
                .iter()
                .cloned()
                .chain(stack.iter().map(|(n, _)| n.clone()))
                .collect();
            match self.toks[self.pos].clone() {
                Tok::Punct('#') if self.attribute_is_cfg_test() => {
                    self.skip_item();
                }
                Tok::Punct('#') => {
                    // Skip the attribute: its paths (`#[doc = ..]`, `#[cfg(..)]`) are not uses.
                    self.pos += 1;
                    if self.peek(0) == Some(&Tok::Punct('!')) {
                        self.pos += 1;
                    }
                    self.skip_group();
                }
                Tok::Punct('{') => {
                    depth += 1;
                    self.pos += 1;
                }
                Tok::Punct('}') => {
                    if stack.last().is_some_and(|(_, d)| *d == depth) {
                        stack.pop();
                    }
                    depth = depth.saturating_sub(1);
                    self.pos += 1;
                }
                Tok::Ident(w) if w == "mod" => {
                    if let Some(Tok::Ident(name)) = self.peek(1).cloned() {
                        let mut m = here.clone();
                        m.push(name.clone());
                        self.krate
                            .modules
                            .entry(m)
                            .or_insert_with(|| self.file_mod.clone());
                        if self.peek(2) == Some(&Tok::Punct('{')) {
                            depth += 1;
                            stack.push((name, depth));
                            self.pos += 3;
                            continue;
                        }
                    }
                    self.pos += 1;
                }
                Tok::Ident(w) if w == "use" && self.peek(1) != Some(&Tok::Punct('<')) => {
                    self.pos += 1;
                    self.use_tree(&here, Vec::new(), true);
                    while self.pos < self.toks.len() && self.toks[self.pos] != Tok::Punct(';') {
                        self.pos += 1;
                    }
                }
                Tok::Ident(w) if w == "pub" && self.peek(1) == Some(&Tok::Punct('(')) => {
                    // `pub(crate)`, `pub(super)`, `pub(in path)`: a visibility, not a use.
                    self.pos += 1;
                    self.skip_group();
                }
                Tok::Ident(w) if ITEM_KEYWORDS.contains(&w.as_str()) || w == "macro_rules" => {
                    let k = if w == "macro_rules" { 2 } else { 1 };
                    if let Some(Tok::Ident(name)) = self.peek(k).cloned()
                        && !ITEM_KEYWORDS.contains(&name.as_str())
                    {
                        self.krate
                            .defines
                            .entry(here.clone())
                            .or_default()
                            .insert(name);
                    }
                    self.pos += 1;
                }
                Tok::Ident(_) => {
                    let mid_path = self.pos > 0
                        && matches!(self.toks[self.pos - 1], Tok::Path | Tok::Punct('.'));
                    if !mid_path
                        && self.peek(1) == Some(&Tok::Path)
                        && let Some((mut abs, n)) = self.path_root(&here, self.pos)
                    {
                        let (segs, end) = if n == 0 {
                            self.segments(self.pos)
                        } else {
                            self.segments(self.pos + n)
                        };
                        abs.extend(segs);
                        self.scan.uses.push((here.clone(), abs));
                        self.pos = end.max(self.pos + 1);
                    } else {
                        self.pos += 1;
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// At `#`: whether the attribute is `#[cfg(test)]`-like (a `cfg` naming `test`, no
    /// `not`). Leaves `pos` at the `#` unless it is.
    fn attribute_is_cfg_test(&mut self) -> bool {
        if self.peek(1) != Some(&Tok::Punct('[')) || !is_ident(self.peek(2), "cfg") {
            return false;
        }
        let start = self.pos;
        self.pos += 1;
        let group_start = self.pos;
        self.skip_group();
        let inner = &self.toks[group_start..self.pos];
        let test = inner
            .iter()
            .any(|t| matches!(t, Tok::Ident(w) if w == "test"))
            && !inner
                .iter()
                .any(|t| matches!(t, Tok::Ident(w) if w == "not"));
        if !test {
            self.pos = start;
        }
        test
    }

    /// Skips what a `#[cfg(test)]` gates. An item (`mod`, `fn`, `impl`, `use`, ..) ends at
    /// a `;` or with its first `{..}`; anything else (a field, a statement, a match arm)
    /// at a `,` or `;`, or before the `}` or `)` that closes what holds it.
    fn skip_item(&mut self) {
        const ITEMS: &[&str] = &[
            "mod",
            "fn",
            "impl",
            "use",
            "struct",
            "enum",
            "union",
            "trait",
            "type",
            "const",
            "static",
            "unsafe",
            "async",
            "extern",
            "macro_rules",
        ];
        // Past the attributes (and the visibility) to what they gate.
        let mut k = self.pos;
        while self.toks.get(k) == Some(&Tok::Punct('#')) {
            let save = self.pos;
            self.pos = k + 1;
            self.skip_group();
            k = self.pos;
            self.pos = save;
        }
        if is_ident(self.toks.get(k), "pub") {
            k += 1;
            if self.toks.get(k) == Some(&Tok::Punct('(')) {
                let save = self.pos;
                self.pos = k;
                self.skip_group();
                k = self.pos;
                self.pos = save;
            }
        }
        let item = matches!(self.toks.get(k), Some(Tok::Ident(w)) if ITEMS.contains(&w.as_str()));
        self.pos = k;
        let mut depth = 0i32;
        while self.pos < self.toks.len() {
            match self.toks[self.pos] {
                Tok::Punct('(' | '[') => depth += 1,
                Tok::Punct('{') if item && depth == 0 => {
                    self.skip_group();
                    return;
                }
                Tok::Punct('{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth < 0 {
                        return; // the end of what holds it: not ours to take
                    }
                }
                Tok::Punct(';') if depth == 0 => {
                    self.pos += 1;
                    return;
                }
                Tok::Punct(',') if !item && depth == 0 => {
                    self.pos += 1;
                    return;
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// At an opening bracket: moves past its matching close.
    fn skip_group(&mut self) {
        let mut depth = 0i32;
        while self.pos < self.toks.len() {
            match self.toks[self.pos] {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth <= 0 {
                        self.pos += 1;
                        return;
                    }
                }
                _ => {}
            }
            self.pos += 1;
            if depth == 0 {
                return;
            }
        }
    }

    /// Parses one use tree at `pos` with the absolute `prefix` so far (`first`: the tree
    /// starts a `use` declaration, where `crate`/`super`/`self`/child names are roots).
    fn use_tree(&mut self, here: &ModPath, prefix: ModPath, first: bool) {
        let mut path = prefix;
        if first {
            if self.peek(0) == Some(&Tok::Path) {
                return; // `use ::extern_crate::..`
            }
            match self.path_root(here, self.pos) {
                Some((abs, n)) => {
                    path = abs;
                    self.pos += n;
                    if self.peek(0) == Some(&Tok::Path) {
                        self.pos += 1;
                    }
                }
                None => return, // an extern crate (std, http, ..)
            }
        }
        loop {
            match self.peek(0).cloned() {
                Some(Tok::Punct('{')) => {
                    self.pos += 1;
                    loop {
                        match self.peek(0) {
                            Some(Tok::Punct('}')) => {
                                self.pos += 1;
                                return;
                            }
                            Some(Tok::Punct(',')) => self.pos += 1,
                            None => return,
                            _ => self.use_tree(here, path.clone(), false),
                        }
                    }
                }
                Some(Tok::Punct('*')) => {
                    self.pos += 1;
                    self.krate
                        .globs
                        .entry(here.clone())
                        .or_default()
                        .push(path.clone());
                    self.scan.uses.push((here.clone(), path));
                    return;
                }
                Some(Tok::Ident(w)) if w == "self" => {
                    // `{self}` / `{self as x}`: the prefix module itself.
                    self.pos += 1;
                    let name = self.rename().or_else(|| path.last().cloned());
                    self.import(here, name, path);
                    return;
                }
                Some(Tok::Ident(w)) => {
                    path.push(w);
                    self.pos += 1;
                    if self.peek(0) == Some(&Tok::Path) {
                        self.pos += 1;
                        continue;
                    }
                    let name = self.rename().or_else(|| path.last().cloned());
                    self.import(here, name, path);
                    return;
                }
                _ => return,
            }
        }
    }

    /// `as name` after a use path; `as _` imports no name.
    fn rename(&mut self) -> Option<String> {
        if is_ident(self.peek(0), "as") {
            let name = match self.peek(1) {
                Some(Tok::Ident(n)) => Some(n.clone()),
                _ => None,
            };
            self.pos += 2;
            return name;
        }
        None
    }

    fn import(&mut self, here: &ModPath, name: Option<String>, path: ModPath) {
        if let Some(name) = name {
            self.krate
                .imports
                .entry(here.clone())
                .or_default()
                .insert(name, path.clone());
        }
        self.scan.uses.push((here.clone(), path));
    }
}

impl Crate {
    /// The module that defines what `path` names, following imports and re-exports.
    /// `via` gets each module whose re-export was followed on the way: a path through
    /// `crate::revoke::TokenRef` uses `revoke` even though `authn` defines `TokenRef`.
    fn resolve(&self, path: &[String], hops: usize, via: &mut Vec<ModPath>) -> ModPath {
        let mut cur: ModPath = Vec::new();
        for (i, seg) in path.iter().enumerate() {
            let mut child = cur.clone();
            child.push(seg.clone());
            if self.modules.contains_key(&child) {
                cur = child;
                continue;
            }
            if hops < 16 {
                if let Some(target) = self.imports.get(&cur).and_then(|m| m.get(seg)) {
                    let mut next = target.clone();
                    next.extend(path[i + 1..].iter().cloned());
                    via.push(cur.clone());
                    return self.resolve(&next, hops + 1, via);
                }
                let defined = self.defines.get(&cur).is_some_and(|d| d.contains(seg));
                if !defined {
                    for glob in self.globs.get(&cur).into_iter().flatten() {
                        let mut next = glob.clone();
                        next.extend(path[i..].iter().cloned());
                        let mut glob_via = Vec::new();
                        let found = self.resolve(&next, hops + 1, &mut glob_via);
                        if self.defines.get(&found).is_some_and(|d| d.contains(seg)) {
                            via.push(cur.clone());
                            via.extend(glob_via);
                            return found;
                        }
                    }
                }
            }
            break;
        }
        cur
    }

    /// The file module holding module `m` (inline modules belong to their file).
    fn file_of(&self, m: &ModPath) -> ModPath {
        let mut m = m.clone();
        loop {
            if let Some(file) = self.modules.get(&m) {
                return file.clone();
            }
            if m.pop().is_none() {
                return m;
            }
        }
    }
}

/// Module path of a file under `src/`.
fn module_of(rel: &Path) -> ModPath {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.strip_suffix(".rs").unwrap();
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Edges per level: the directory module (`[]` for the top level) -> (child -> children
/// of the same directory it uses).
type Graphs = BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>>;

/// The graph at every level, and for each edge the uses that make it (`src/x.rs:
/// crate::y::Z`), for the messages.
struct Graph {
    levels: Graphs,
    why: BTreeMap<(ModPath, String, String), BTreeSet<String>>,
}

fn graphs() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.starts_with(src.join("bin")));
    let mut names = BTreeMap::new();
    let toks: Vec<(ModPath, Vec<Tok>)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap();
            let m = module_of(rel);
            names.insert(m.clone(), format!("src/{}", rel.display()));
            (m, lex(&fs::read_to_string(f).unwrap()))
        })
        .collect();
    let mut krate = Crate::default();
    for (m, _) in &toks {
        krate.modules.insert(m.clone(), m.clone());
    }
    // Two passes: the first learns every inline module, import and definition, the second
    // reads the uses against the whole crate.
    for pass in 0..2 {
        krate.uses.clear();
        krate.imports.clear();
        krate.globs.clear();
        krate.defines.clear();
        for (m, t) in &toks {
            let mut p = Parser {
                toks: t,
                pos: 0,
                file_mod: m.clone(),
                krate: &mut krate,
                scan: Scan::default(),
            };
            p.run();
            let uses = std::mem::take(&mut p.scan.uses);
            if pass == 1 {
                for (at, path) in uses {
                    let file = krate.file_of(&at);
                    krate.uses.push((file, path));
                }
            }
        }
    }
    let mut g = Graph {
        levels: Graphs::new(),
        why: BTreeMap::new(),
    };
    for (from, path) in &krate.uses {
        let mut targets = Vec::new();
        let end = krate.resolve(path, 0, &mut targets);
        targets.push(end);
        for to in targets.iter().map(|m| krate.file_of(m)) {
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // Ancestors and descendants (re-exports, `super::Shared`) are not edges.
            if common == from.len() || common == to.len() {
                continue;
            }
            let level = from[..common].to_vec();
            let (a, b) = (from[common].clone(), to[common].clone());
            g.levels
                .entry(level.clone())
                .or_default()
                .entry(a.clone())
                .or_default()
                .insert(b.clone());
            let written = if path.is_empty() {
                "crate".to_string()
            } else {
                format!("crate::{}", path.join("::"))
            };
            g.why
                .entry((level, a, b))
                .or_default()
                .insert(format!("{}: {written}", names[from]));
        }
    }
    // Every file module is a node, even one that uses nothing.
    for m in krate.modules.values() {
        for i in 0..m.len() {
            g.levels
                .entry(m[..i].to_vec())
                .or_default()
                .entry(m[i].clone())
                .or_default();
        }
    }
    g
}

/// Strongly connected components with more than one node (Tarjan), in a stable order.
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    scc.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// One circle through every node of a component, for the message: `a -> b -> a`, then
/// each edge inside the component with the uses that make it.
fn describe(
    g: &BTreeMap<String, BTreeSet<String>>,
    why: &BTreeMap<(ModPath, String, String), BTreeSet<String>>,
    level: &ModPath,
    scc: &[String],
) -> String {
    let inside: BTreeSet<&str> = scc.iter().map(String::as_str).collect();
    let mut lines = Vec::new();
    for a in scc {
        for b in g
            .get(a)
            .into_iter()
            .flatten()
            .filter(|b| inside.contains(b.as_str()))
        {
            let uses = &why[&(level.clone(), a.clone(), b.clone())];
            let shown: Vec<&str> = uses.iter().take(3).map(String::as_str).collect();
            let more = uses.len().saturating_sub(3);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            lines.push(format!("  {a} -> {b}: {}{more}", shown.join("; ")));
        }
    }
    // The shortest way back from the first node, through the component.
    let start = scc[0].as_str();
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut cycle = None;
    while let Some(v) = queue.pop_front() {
        for w in g
            .get(v)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|w| inside.contains(w))
        {
            if w == start {
                let mut path = vec![start];
                let mut x = v;
                while x != start {
                    path.push(x);
                    x = prev[x];
                }
                path.push(start);
                let n = path.len();
                path[1..n - 1].reverse();
                cycle = Some(path.join(" -> "));
                break;
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
        if cycle.is_some() {
            break;
        }
    }
    format!("{}\n{}", cycle.unwrap_or_default(), lines.join("\n"))
}

fn level_name(level: &ModPath) -> String {
    if level.is_empty() {
        "crate".into()
    } else {
        level.join("::")
    }
}

fn render(g: &Graphs) -> String {
    let mut s = String::new();
    for (level, edges) in g {
        let title = if level.is_empty() {
            "top-level modules".to_string()
        } else {
            format!("inside {}", level.join("/"))
        };
        writeln!(s, "# {title} (module -> modules it uses)").unwrap();
        for (m, uses) in edges {
            let list: Vec<&str> = uses.iter().map(String::as_str).collect();
            writeln!(
                s,
                "{m} -> {}",
                if list.is_empty() {
                    "-".into()
                } else {
                    list.join(", ")
                }
            )
            .unwrap();
        }
        writeln!(s).unwrap();
    }
    s
}

/// The circles, allowed edges left out, each named with the uses that close it.
fn violations(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (level, edges) in &g.levels {
        let mut checked = edges.clone();
        for (dir, from, to) in ALLOWED {
            if level_name(level) == *dir
                && let Some(uses) = checked.get_mut(*from)
            {
                uses.remove(*to);
            }
        }
        for scc in circles(&checked) {
            out.push(format!(
                "circle in {}: {}",
                level_name(level),
                describe(&checked, &g.why, level, &scc)
            ));
        }
    }
    out
}

#[test]
fn no_import_circles() {
    let g = graphs();
    let bad = violations(&g);
    if !bad.is_empty() {
        panic!(
            "dependencies must run one way (STYLE.md); found:\n{}\n\nthe graph:\n{}",
            bad.join("\n"),
            render(&g.levels)
        );
    }
}

#[test]
fn module_graph_is_printed() {
    let g = graphs();
    let text = render(&g.levels);
    // Sanity: the reader sees the layers it must see, or it reads nothing at all.
    let top = &g.levels[&Vec::new()];
    assert!(top["layer"].contains("authn"), "{text}");
    assert!(top["authn"].contains("jose"), "{text}");
    assert!(
        top["jose"].is_empty(),
        "jose imports nothing else of the crate\n{text}"
    );
    println!("{text}");
}

#[test]
fn the_reader_sees_what_it_must() {
    let src = r####"
//! crate::docs::Ignored
use crate::{a, b::{c, d as e}, f::*};
use super::sibling::{self, Thing};
pub(crate) use self::child::Re;
/* crate::comment::Ignored /* nested crate::x::Y */ */
fn f<'a>(x: &'a str) -> char {
    let _ = "crate::string::Ignored";
    let _ = r#"crate::raw::Ignored"#;
    crate::metrics::decision(x);
    <crate::g::H as super::T>::call();
    'c'
}
#[cfg(test)]
mod tests {
    use crate::only::InTests;
}
struct S {
    #[cfg(test)]
    probe: crate::probe::Count,
    kept: u8,
}
impl S {
    fn g(&self) {
        #[cfg(test)]
        crate::probe::bump();
        crate::after::seen();
    }
}
"####;
    let mut krate = Crate::default();
    let here: ModPath = vec!["p".into(), "q".into()];
    for m in [
        vec!["p"],
        vec!["p", "q"],
        vec!["p", "q", "child"],
        vec!["p", "sibling"],
    ] {
        let m: ModPath = m.into_iter().map(String::from).collect();
        krate.modules.insert(m.clone(), m);
    }
    let toks = lex(src);
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        file_mod: here,
        krate: &mut krate,
        scan: Scan::default(),
    };
    p.run();
    let got: BTreeSet<String> = p.scan.uses.iter().map(|(_, u)| u.join("::")).collect();
    let want: BTreeSet<String> = [
        "a",
        "b::c",
        "b::d",
        "f",
        "p::sibling",
        "p::sibling::Thing",
        "p::q::child::Re",
        "metrics::decision",
        "g::H",
        "p::T",
        "after::seen",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        krate.imports[&vec!["p".to_string(), "q".to_string()]]["e"],
        vec!["b", "d"]
    );
}
