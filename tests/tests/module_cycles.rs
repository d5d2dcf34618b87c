//! No import cycles between the modules of any crate of the workspace: each crate's module tree is read
//! from its sources (`syn`), every path a module uses (`use` trees and paths in code, through `crate::`,
//! `super::`, `self::` or a child module's name) becomes an edge to the module it names, and at every
//! level of the tree the edges between sibling modules (a module's subtree counts as the module) must
//! form no cycle. Test code (`#[cfg(test)]` items) does not count. A parent using its children, or a
//! child using its parent's items, is not a cycle between siblings.
//!
//! Run one crate: `MODULE_CYCLES_CRATE=sstable-reader cargo test -p e2e-tests --test module_cycles`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

type ModPath = Vec<String>;

/// A crate's modules (absolute paths, the root is `[]`) and the edges between them.
#[derive(Default)]
struct Graph {
    modules: BTreeSet<ModPath>,
    /// module → modules its code names (longest known module prefix of each path).
    uses: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

struct Collector<'g> {
    graph: &'g mut Graph,
    module: ModPath,
    /// Paths named by the module, resolved to absolute segments (modules are matched afterwards).
    paths: Vec<(ModPath, ModPath)>,
    dir: PathBuf,
    /// Whether the current module's file owns a directory for its children (`mod.rs`, `lib.rs`,
    /// `main.rs`) or they sit in `<name>/` next to it.
    children: BTreeMap<ModPath, BTreeSet<String>>,
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta.require_list().is_ok_and(|l| {
                l.tokens
                    .to_string()
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|t| t == "test")
            })
    })
}

impl Collector<'_> {
    /// Resolves a path's segments from the current module; `None` for external crates and std.
    fn resolve(&self, segs: &[String]) -> Option<ModPath> {
        let first = segs.first()?;
        let mut base = self.module.clone();
        let mut rest = segs;
        match first.as_str() {
            "crate" => {
                base.clear();
                rest = &segs[1..];
            }
            "self" => rest = &segs[1..],
            "super" => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            name => {
                // A child module of the current one (2018 paths), else something else (a crate, an item).
                let children = self.children.get(&self.module)?;
                if !children.contains(name) {
                    return None;
                }
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn add(&mut self, segs: Vec<String>) {
        if let Some(p) = self.resolve(&segs) {
            self.paths.push((self.module.clone(), p));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut segs = prefix.clone();
                if n.ident != "self" {
                    segs.push(n.ident.to_string());
                }
                self.add(segs);
            }
            syn::UseTree::Rename(r) => {
                let mut segs = prefix.clone();
                segs.push(r.ident.to_string());
                self.add(segs);
            }
            syn::UseTree::Glob(_) => self.add(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn module_file(&self, name: &str, dir: &Path) -> Option<(PathBuf, PathBuf)> {
        let flat = dir.join(format!("{name}.rs"));
        if flat.is_file() {
            return Some((flat, dir.join(name)));
        }
        let nested = dir.join(name).join("mod.rs");
        nested.is_file().then(|| (nested, dir.join(name)))
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        let attrs = match i {
            syn::Item::Const(x) => &x.attrs,
            syn::Item::Enum(x) => &x.attrs,
            syn::Item::Fn(x) => &x.attrs,
            syn::Item::Impl(x) => &x.attrs,
            syn::Item::Mod(x) => &x.attrs,
            syn::Item::Static(x) => &x.attrs,
            syn::Item::Struct(x) => &x.attrs,
            syn::Item::Trait(x) => &x.attrs,
            syn::Item::Type(x) => &x.attrs,
            syn::Item::Use(x) => &x.attrs,
            _ => return syn::visit::visit_item(self, i),
        };
        if is_test(attrs) {
            return;
        }
        syn::visit::visit_item(self, i);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let name = m.ident.to_string();
        let mut child = self.module.clone();
        child.push(name.clone());
        self.graph.modules.insert(child.clone());
        let saved_module = std::mem::replace(&mut self.module, child.clone());
        let saved_dir = self.dir.clone();
        match &m.content {
            Some((_, items)) => {
                self.dir = self.dir.join(&name);
                self.children.entry(child.clone()).or_default();
                for it in items {
                    if let syn::Item::Mod(sub) = it {
                        self.children
                            .entry(child.clone())
                            .or_default()
                            .insert(sub.ident.to_string());
                    }
                }
                for it in items {
                    self.visit_item(it);
                }
            }
            None => {
                let (file, dir) = self.module_file(&name, &saved_dir).unwrap_or_else(|| {
                    panic!("module {name} in {} not found", saved_dir.display())
                });
                self.dir = dir;
                parse_into(self, &file);
            }
        }
        self.module = saved_module;
        self.dir = saved_dir;
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.segments.len() > 1 && p.leading_colon.is_none() {
            let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.add(segs);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Paths inside macro calls (format!, assert!…) are tokens: read them as expressions when they are.
        if let Ok(args) = m.parse_body_with(
            syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated,
        ) {
            for e in &args {
                self.visit_expr(e);
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

fn parse_into(c: &mut Collector<'_>, file: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let module = c.module.clone();
    let kids = c.children.entry(module).or_default();
    for it in &ast.items {
        if let syn::Item::Mod(m) = it {
            kids.insert(m.ident.to_string());
        }
    }
    for it in &ast.items {
        c.visit_item(it);
    }
}

fn crate_graph(root_file: &Path) -> Graph {
    let mut graph = Graph::default();
    graph.modules.insert(Vec::new());
    let mut c = Collector {
        graph: &mut graph,
        module: Vec::new(),
        paths: Vec::new(),
        dir: root_file.parent().unwrap().to_path_buf(),
        children: BTreeMap::new(),
    };
    parse_into(&mut c, root_file);
    let paths = std::mem::take(&mut c.paths);
    drop(c);
    for (from, to) in paths {
        // The longest prefix of the path that is a module.
        let target = (0..=to.len())
            .rev()
            .map(|n| to[..n].to_vec())
            .find(|p| graph.modules.contains(p))
            .unwrap_or_default();
        graph.uses.entry(from).or_default().insert(target);
    }
    graph
}

/// The cycles between sibling modules, as `a -> b -> … -> a` lines.
fn cycles(g: &Graph) -> Vec<String> {
    // parent → child → children it uses
    let mut levels: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, tos) in &g.uses {
        for to in tos {
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue; // a module and its ancestor or descendant
            }
            levels
                .entry(from[..common].to_vec())
                .or_default()
                .entry(from[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }
    let mut out = Vec::new();
    for (parent, edges) in &levels {
        // Tarjan would do; the graphs are small, so: every strongly connected pair via reachability.
        let reach = |start: &String| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![start.clone()];
            while let Some(n) = stack.pop() {
                for m in edges.get(&n).into_iter().flatten() {
                    if seen.insert(m.clone()) {
                        stack.push(m.clone());
                    }
                }
            }
            seen
        };
        let mut reported = BTreeSet::new();
        for (a, tos) in edges {
            for b in tos {
                if a != b
                    && reach(b).contains(a)
                    && reported.insert((a.min(b).clone(), a.max(b).clone()))
                {
                    let at = if parent.is_empty() {
                        "crate".to_string()
                    } else {
                        format!("crate::{}", parent.join("::"))
                    };
                    out.push(format!("{at}: {a} -> {b} -> … -> {a}"));
                }
            }
        }
    }
    out
}

/// Every workspace member's crate roots (lib.rs, main.rs).
fn crate_roots() -> Vec<(String, PathBuf)> {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(ws.join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in members.split('"').skip(1).step_by(2) {
        let dir = ws.join(m);
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        let lib = text
            .split("[lib]")
            .nth(1)
            .and_then(|s| s.split("path = \"").nth(1))
            .and_then(|s| s.split('"').next())
            .map(|p| dir.join(p));
        for root in [
            lib.unwrap_or_else(|| dir.join("src/lib.rs")),
            dir.join("src/main.rs"),
        ] {
            if root.is_file() {
                out.push((m.to_string(), root));
            }
        }
    }
    out
}

#[test]
fn no_crate_has_import_cycles_between_its_modules() {
    let only = std::env::var("MODULE_CYCLES_CRATE").ok();
    let roots: Vec<_> = crate_roots()
        .into_iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == name))
        .collect();
    assert!(!roots.is_empty(), "no crate roots found");
    let mut found = Vec::new();
    for (name, root) in &roots {
        for c in cycles(&crate_graph(root)) {
            found.push(format!("{name} ({}): {c}", root.display()));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

/// The checker itself finds a cycle, through `use`, `super::` and an inline path, and not a parent/child
/// reference or test code.
#[test]
fn the_checker_sees_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "mod a; mod b; mod c; pub fn top() {}\n#[cfg(test)] mod tests { use crate::c::C; }",
    )
    .unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "mod inner; pub struct A; use crate::top;",
    )
    .unwrap();
    std::fs::write(
        src.join("a/inner.rs"),
        "fn f() { let _ = super::super::b::B; super::A; }",
    )
    .unwrap();
    std::fs::write(src.join("b.rs"), "pub struct B; use crate::a::A;").unwrap();
    std::fs::write(src.join("c.rs"), "pub struct C; fn g() { crate::b::B; }").unwrap();
    let found = cycles(&crate_graph(&src.join("lib.rs")));
    assert_eq!(found, ["crate: a -> b -> … -> a"]);
    std::fs::write(src.join("b.rs"), "pub struct B;").unwrap();
    assert!(cycles(&crate_graph(&src.join("lib.rs"))).is_empty());
}
