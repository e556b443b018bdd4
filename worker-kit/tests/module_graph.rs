//! worker-kit's source files import each other without cycles (the README's "Layout",
//! leaves first): a file never needs, through any chain of imports, a file that needs it.
//!
//! Each file's paths that start with `crate::`, `super::` or `self::` (in `use`
//! declarations and in code; comments, strings and `#[cfg(test)]` items left out) are
//! resolved through re-exports to the file that defines the item, and make the edges of a
//! graph of files. A re-export of a module's own descendants (`pub use child::Item;` in
//! `mod.rs` or `lib.rs`) is how the module shows its parts, not a need, so it is no edge;
//! any other import is. A strongly connected set of two or more files fails the test,
//! which names the files and one cycle through them with the imports that make it.
//!
//! The same edges must also run leaves first: from a module's own layer or a lower one
//! (`LAYERS`, the README's "Layout").
//!
//! `scripts/pj lint` runs this test, so CI keeps the graph acyclic and layered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[test]
fn worker_kit_src_has_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    assert!(
        files.len() > 40 && files.iter().any(|(m, _)| m == "worker::consume"),
        "read only {} files under {}",
        files.len(),
        src.display()
    );
    let graph = Graph::build(&files);
    assert!(
        graph.edge_count() > 100,
        "suspiciously few imports found ({}): is the parser still reading `use crate::...`?",
        graph.edge_count()
    );
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "worker-kit/src has import cycles; move the item that closes each one down to the \
         lower layer (or define the label/trait below and implement it above):\n{}",
        cycles.join("\n")
    );
}

/// The runtime's layers, leaves first (the README's "Layout"): a module imports from its
/// own layer or the ones below, never from above. The longest matching prefix decides.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("config", 0),
    ("wire", 0),
    ("observe", 0),
    ("redact", 0),
    ("shutdown", 0),
    ("backoff", 0),
    ("access", 1),
    ("db", 1),
    ("handler", 2),
    ("amqp", 2),
    ("worker", 3),
    ("rpc", 4),
    ("queue", 4),
    ("events", 4),
    ("outbox", 5),
    ("runner", 6),
    ("asyncapi", 6),
    ("logging", 6),
    ("testing", 7),
];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(name, _)| module == *name || module.starts_with(&format!("{name}::")))
        .max_by_key(|(name, _)| name.len())
        .map(|(_, layer)| *layer)
}

#[test]
fn worker_kit_src_imports_leaves_first() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    let unlayered: Vec<&str> = files
        .iter()
        .map(|(m, _)| m.as_str())
        .filter(|m| *m != "crate" && layer_of(m).is_none())
        .collect();
    assert!(
        unlayered.is_empty(),
        "give these modules a layer in LAYERS (tests/module_graph.rs) and the README: {unlayered:?}"
    );
    let upward = Graph::build(&files).upward();
    assert!(
        upward.is_empty(),
        "imports from a higher layer (move the item down, or define a trait/label below and \
         implement it above):\n{}",
        upward.join("\n")
    );
}

/// Every `.rs` file under `src` as (module path, text); `lib.rs` is `crate`.
fn read_tree(src: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("under src");
                let text = std::fs::read_to_string(&path).expect("read source file");
                out.push((module_of(&rel.to_string_lossy()), text));
            }
        }
    }
    out.sort();
    out
}

/// `worker/consume.rs` → `worker::consume`, `worker/mod.rs` → `worker`, `lib.rs` → `crate`.
fn module_of(rel: &str) -> String {
    let rel = rel.trim_end_matches(".rs").replace('\\', "/");
    let mut parts: Vec<&str> = rel.split('/').collect();
    if matches!(parts.last(), Some(&"mod" | &"lib")) {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".to_owned()
    } else {
        parts.join("::")
    }
}

/// A path found in a file: its segments made absolute (from the crate root), the text it
/// was written as, and whether it is a re-export (`pub use`).
#[derive(Debug, Clone)]
struct Reference {
    segments: Vec<String>,
    written: String,
    reexport: bool,
}

/// What one file says: the names it imports (for resolving re-exports through it) and
/// every path it refers to.
#[derive(Debug, Default)]
struct FileFacts {
    /// Imported name → absolute path (from `use` at the file's top level).
    imports: BTreeMap<String, Vec<String>>,
    references: Vec<Reference>,
}

struct Graph {
    /// File → (file it needs → the first path that needs it).
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

impl Graph {
    fn build(files: &[(String, String)]) -> Self {
        let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
        let facts: BTreeMap<String, FileFacts> = files
            .iter()
            .map(|(m, text)| (m.clone(), scan(m, text, &modules)))
            .collect();
        let resolver = Resolver {
            modules: &modules,
            facts: &facts,
        };
        let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (from, f) in &facts {
            let out = edges.entry(from.clone()).or_default();
            for r in &f.references {
                let Some(to) = resolver.file_of(&r.segments, 0) else {
                    continue;
                };
                if &to == from || to == "crate" || (r.reexport && is_descendant(&to, from)) {
                    continue;
                }
                out.entry(to).or_insert_with(|| r.written.clone());
            }
        }
        Self { edges }
    }

    /// Each import from a lower layer into a higher one, as `from (Ln) -> to (Lm): path`.
    fn upward(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (from, tos) in &self.edges {
            for (to, written) in tos {
                if let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to))
                    && lt > lf
                {
                    out.push(format!("{from} (L{lf}) -> {to} (L{lt}): {written}"));
                }
            }
        }
        out
    }

    fn edge_count(&self) -> usize {
        self.edges.values().map(BTreeMap::len).sum()
    }

    /// Each strongly connected set of two or more files, as one line naming the files and a
    /// cycle through them.
    fn cycles(&self) -> Vec<String> {
        strongly_connected(&self.edges)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|component| {
                let names: Vec<&str> = component.iter().map(String::as_str).collect();
                format!(
                    "cycle of {} files: {}\n  for example: {}",
                    component.len(),
                    names.join(", "),
                    self.one_cycle(&component)
                )
            })
            .collect()
    }

    /// A shortest cycle through the component's first file, with the import of each step.
    fn one_cycle(&self, component: &BTreeSet<String>) -> String {
        let start = component.iter().next().expect("non-empty component");
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.as_str()]);
        let mut seen = BTreeSet::from([start.as_str()]);
        let mut last = None;
        'search: while let Some(at) = queue.pop_front() {
            for next in self.edges[at].keys() {
                if !component.contains(next) {
                    continue;
                }
                if next == start {
                    last = Some(at);
                    break 'search;
                }
                if seen.insert(next) {
                    came_from.insert(next, at);
                    queue.push_back(next);
                }
            }
        }
        let mut path = vec![start.as_str()];
        let mut at = last.expect("a component of two or more files has a cycle");
        while at != start {
            path.push(at);
            at = came_from[at];
        }
        path.push(start);
        path.reverse();
        path.windows(2)
            .map(|w| format!("{} -> {} ({})", w[0], w[1], self.edges[w[0]][w[1]]))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn is_descendant(module: &str, ancestor: &str) -> bool {
    ancestor == "crate" || module.starts_with(&format!("{ancestor}::"))
}

struct Resolver<'a> {
    modules: &'a BTreeSet<String>,
    facts: &'a BTreeMap<String, FileFacts>,
}

impl Resolver<'_> {
    /// The file that defines what `segments` (absolute: `crate`, ...) names: the deepest
    /// file module on the path, then on through that file's import of the next segment.
    fn file_of(&self, segments: &[String], depth: usize) -> Option<String> {
        if depth > 16 || segments.first().map(String::as_str) != Some("crate") {
            return None;
        }
        let (file, consumed) = (1..=segments.len()).rev().find_map(|k| {
            let module = if k == 1 {
                "crate".to_owned()
            } else {
                segments[1..k].join("::")
            };
            self.modules.contains(&module).then_some((module, k))
        })?;
        let imported = segments
            .get(consumed)
            .and_then(|name| self.facts.get(&file)?.imports.get(name));
        if let Some(target) = imported {
            let mut through = target.clone();
            through.extend_from_slice(&segments[consumed + 1..]);
            if let Some(defining) = self.file_of(&through, depth + 1) {
                return Some(defining);
            }
        }
        Some(file)
    }
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flat_map(BTreeMap::keys) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

// --- Reading a file ----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Hash,
    Other(char),
}

/// The file's paths and imports, with `module` its module path.
fn scan(module: &str, text: &str, modules: &BTreeSet<String>) -> FileFacts {
    let tokens = without_test_items(&tokenize(text));
    let mut facts = FileFacts::default();
    // Inline modules (`mod otel { ... }`): their paths start from their own module.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let here = current_module(module, &inline);
        match &tokens[i] {
            Token::Open => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Token::Ident(k) if k == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Open)) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push((name.clone(), depth));
                }
            }
            Token::Ident(k) if k == "use" => {
                let reexport = is_pub_before(&tokens, i);
                let (trees, end) = parse_use_tree(&tokens, i + 1, Vec::new());
                for (mut path, alias) in trees {
                    // `use child::Item;` names a child module of this one (2018 paths).
                    if path.first().is_some_and(|first| {
                        modules.contains(
                            &[here.as_slice(), std::slice::from_ref(first)]
                                .concat()
                                .join("::"),
                        )
                    }) {
                        path.insert(0, "self".to_owned());
                    }
                    let Some(segments) = absolute(&here, &path) else {
                        continue;
                    };
                    if inline.is_empty() && alias != "*" {
                        facts.imports.insert(alias, segments.clone());
                    }
                    facts.references.push(Reference {
                        written: format!("use {}", path.join("::")),
                        segments,
                        reexport,
                    });
                }
                i = end;
                continue;
            }
            Token::Ident(k)
                if (k == "crate" || k == "super" || k == "self")
                    && tokens.get(i + 1) == Some(&Token::PathSep)
                    && !matches!(tokens.get(i.wrapping_sub(1)), Some(Token::PathSep)) =>
            {
                let mut path = vec![k.clone()];
                let mut j = i + 1;
                while tokens.get(j) == Some(&Token::PathSep) {
                    match tokens.get(j + 1) {
                        Some(Token::Ident(s)) => {
                            path.push(s.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                if let Some(segments) = absolute(&here, &path) {
                    facts.references.push(Reference {
                        written: path.join("::"),
                        segments,
                        reexport: false,
                    });
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    facts
}

fn current_module(file_module: &str, inline: &[(String, usize)]) -> Vec<String> {
    let mut m: Vec<String> = if file_module == "crate" {
        Vec::new()
    } else {
        file_module.split("::").map(str::to_owned).collect()
    };
    m.extend(inline.iter().map(|(n, _)| n.clone()));
    m
}

/// `path` as written in module `here`, made absolute (`crate`, then the segments); `None`
/// for paths into other crates.
fn absolute(here: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = here.to_vec();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &path[1..];
        }
        Some("self") => rest = &path[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    let mut out = vec!["crate".to_owned()];
    out.extend(base);
    out.extend(rest.iter().cloned());
    Some(out)
}

/// Whether the `use` at `i` has a visibility (`pub`, `pub(crate)`, ...).
fn is_pub_before(tokens: &[Token], i: usize) -> bool {
    match tokens.get(i.wrapping_sub(1)) {
        Some(Token::Ident(p)) if p == "pub" => true,
        Some(Token::Other(')')) => (0..i)
            .rev()
            .take(6)
            .any(|j| tokens[j] == Token::Ident("pub".into())),
        _ => false,
    }
}

/// Parses a use tree starting at `i` under `prefix`: every leaf as (path, name it is
/// imported as; `*` for a glob), and the index after the tree.
fn parse_use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: Vec<String>,
) -> (Vec<(Vec<String>, String)>, usize) {
    let mut path = prefix;
    let mut leaves = Vec::new();
    loop {
        match tokens.get(i) {
            Some(Token::Ident(s)) if s == "as" => {
                if let (Some(Token::Ident(alias)), Some((_, name))) =
                    (tokens.get(i + 1), leaves.last_mut())
                {
                    *name = alias.clone();
                }
                i += 2;
            }
            Some(Token::Ident(s)) => {
                path.push(s.clone());
                i += 1;
                if tokens.get(i) == Some(&Token::PathSep) {
                    i += 1;
                    continue;
                }
                let name = if s == "self" {
                    path.pop();
                    path.last().cloned().unwrap_or_default()
                } else {
                    s.clone()
                };
                leaves.push((path.clone(), name));
            }
            Some(Token::Star) => {
                leaves.push((path.clone(), "*".to_owned()));
                i += 1;
            }
            Some(Token::Open) => {
                i += 1;
                loop {
                    let (inner, end) = parse_use_tree(tokens, i, path.clone());
                    leaves.extend(inner);
                    i = end;
                    match tokens.get(i) {
                        Some(Token::Comma) => i += 1,
                        Some(Token::Close) => {
                            i += 1;
                            break;
                        }
                        _ => break,
                    }
                    if tokens.get(i) == Some(&Token::Close) {
                        i += 1;
                        break;
                    }
                }
            }
            Some(Token::Semi) => return (leaves, i + 1),
            _ => return (leaves, i),
        }
    }
}

/// The tokens without the items under `#[cfg(test)]` (or `#[cfg(all(test, ...))]`).
fn without_test_items(tokens: &[Token]) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if let Some(after) = test_attribute_end(tokens, i) {
            i = item_end(tokens, after);
            continue;
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// If `#[cfg(test)]` or `#[cfg(all(test, ...))]` starts at `i`, the index after it.
fn test_attribute_end(tokens: &[Token], i: usize) -> Option<usize> {
    let ident = |j: usize, s: &str| matches!(tokens.get(j), Some(Token::Ident(t)) if t == s);
    if tokens.get(i) != Some(&Token::Hash)
        || tokens.get(i + 1) != Some(&Token::Other('['))
        || !ident(i + 2, "cfg")
        || tokens.get(i + 3) != Some(&Token::Other('('))
    {
        return None;
    }
    let test_first = ident(i + 4, "test")
        || (ident(i + 4, "all")
            && tokens.get(i + 5) == Some(&Token::Other('('))
            && ident(i + 6, "test"));
    if !test_first {
        return None;
    }
    (i..tokens.len())
        .find(|&j| tokens[j] == Token::Other(']'))
        .map(|j| j + 1)
}

/// The index after the item starting at `i`: its `;` or its closing brace.
fn item_end(tokens: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < tokens.len() {
        match tokens[i] {
            Token::Semi if depth == 0 => return i + 1,
            Token::Open => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Identifiers, `::`, braces and the punctuation the scan needs; comments, strings and
/// character literals are dropped.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(&chars, i + 1),
            'r' | 'b' if is_raw_string_start(&chars, i) => {
                let mut j = i + 1;
                if chars[j] == 'r' {
                    j += 1;
                }
                let hashes = chars[j..].iter().take_while(|&&h| h == '#').count();
                j += hashes + 1;
                let closing: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = chars[j..].iter().collect();
                i = j + rest.find(&closing).map_or(rest.chars().count(), |p| {
                    rest[..p].chars().count() + closing.chars().count()
                });
            }
            '\'' => {
                // A character literal ('x', '\n', '\u{..}'), or a lifetime / label.
                if next == Some('\\') {
                    i += 3;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                // A byte string or byte char right after `b` is handled as a string next.
                out.push(Token::Ident(word));
            }
            ':' if next == Some(':') => {
                out.push(Token::PathSep);
                i += 2;
            }
            '{' => {
                out.push(Token::Open);
                i += 1;
            }
            '}' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            ';' => {
                out.push(Token::Semi);
                i += 1;
            }
            '*' => {
                out.push(Token::Star);
                i += 1;
            }
            '#' => {
                out.push(Token::Hash);
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            c => {
                out.push(Token::Other(c));
                i += 1;
            }
        }
    }
    out
}

fn skip_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// `r"`, `r#"`, `br"`, `br#"` at `i` (and not inside an identifier).
fn is_raw_string_start(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return false;
    }
    j += 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

// --- The check itself, on small graphs ------------------------------------------------

fn graph_of(files: &[(&str, &str)]) -> Graph {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(m, t)| ((*m).to_owned(), (*t).to_owned()))
        .collect();
    Graph::build(&files)
}

#[test]
fn a_cycle_is_found_and_named() {
    let g = graph_of(&[
        ("crate", "pub mod a; pub mod b; pub mod c;"),
        ("a", "use crate::b::Thing;\npub struct Label;"),
        ("b", "pub struct Thing(crate::c::Other);"),
        (
            "c",
            "pub struct Other; fn f() -> crate::a::Label { todo!() }",
        ),
    ]);
    let cycles = g.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].starts_with("cycle of 3 files: a, b, c"),
        "{}",
        cycles[0]
    );
    assert!(
        cycles[0].contains(
            "a -> b (use crate::b::Thing), b -> c (crate::c::Other), c -> a (crate::a::Label)"
        ),
        "{}",
        cycles[0]
    );
}

#[test]
fn an_import_from_a_higher_layer_is_named() {
    let g = graph_of(&[
        ("crate", "pub mod config; pub mod amqp;"),
        ("config", "fn f() { crate::amqp::check(); }"),
        ("amqp", "pub fn check() {} use crate::config::Mode;"),
    ]);
    assert_eq!(
        g.upward(),
        ["config (L0) -> amqp (L2): crate::amqp::check"],
        "{:?}",
        g.edges
    );
}

#[test]
fn imports_in_leaves_first_order_make_no_cycle() {
    let g = graph_of(&[
        ("crate", "pub mod a; pub mod b; pub use a::Label;"),
        ("a", "pub struct Label;"),
        ("b", "use crate::Label;\nuse crate::a::{self, Label as L};"),
    ]);
    assert!(g.cycles().is_empty(), "{:?}", g.cycles());
    assert_eq!(g.edge_count(), 1);
}

#[test]
fn paths_are_resolved_through_re_exports_to_the_defining_file() {
    // `observe` shows `link::Link`; `amqp::broker` uses it through `observe`, and
    // `observe::link` uses the broker: a cycle of the two files, not of `observe`.
    let g = graph_of(&[
        ("crate", "pub mod observe; pub mod amqp;"),
        ("observe", "mod link; pub(crate) use link::Link;"),
        (
            "observe::link",
            "pub enum Link { Main }\nfn f(_: &super::super::amqp::broker::Broker) {}",
        ),
        ("amqp", "pub mod broker;"),
        (
            "amqp::broker",
            "use crate::observe::{Link, self};\npub struct Broker;",
        ),
    ]);
    let cycles = g.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].starts_with("cycle of 2 files: amqp::broker, observe::link"),
        "{}",
        cycles[0]
    );
}

#[test]
fn grouped_and_nested_imports_are_read() {
    let g = graph_of(&[
        ("crate", "pub mod a; pub mod b;"),
        ("a", "use crate::{b::{x::Y, Z}, Error as E};"),
        ("b", "pub mod x; pub struct Z;"),
        ("b::x", "pub struct Y; use super::super::a::Q;"),
    ]);
    assert!(g.edges["a"].contains_key("b::x"), "{:?}", g.edges);
    assert!(g.edges["a"].contains_key("b"), "{:?}", g.edges);
    assert_eq!(g.cycles().len(), 1);
}

#[test]
fn tests_comments_strings_and_inline_modules_are_understood() {
    let g = graph_of(&[
        ("crate", "pub mod a; pub mod b;"),
        (
            "a",
            r##"
            // use crate::b::Commented;
            /* crate::b::Block */
            const S: &str = "crate::b::Quoted";
            const R: &str = r#"crate::b::Raw "quoted""#;
            const C: char = '"';
            const E: char = '\'';
            pub struct A<'x>(&'x str);
            mod inner { use super::A; }
            #[cfg(test)]
            mod tests { use crate::b::OnlyInTests; }
            "##,
        ),
        ("b", "use crate::a::A;"),
    ]);
    assert!(g.cycles().is_empty(), "{:?}", g.edges);
    assert_eq!(g.edge_count(), 1, "{:?}", g.edges);
}
