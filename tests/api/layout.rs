//! The house's floors, read from the code: the files of `src/` import each other without a
//! circle, the HTTP plumbing imports no bounded context, and neither context imports the other.
//! (The lower floors are crates of their own, `runtime/` and `projections/`, which cannot import
//! the server at all: their `Cargo.toml` has no such dependency, which the first test checks.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The module path of a file under `src/` (`src/campus/http/users.rs` → `campus::http::users`).
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(root().join("src")).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The file a module path names, taking the longest prefix that is a file.
fn file_of(path: &[String], files: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| files.contains(prefix))
}

/// Every `use` statement expanded (`use a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = format!("{prefix}{}", &tree[..open]);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &head, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &head, out);
    } else if !tree.is_empty() {
        out.push(format!(
            "{prefix}{}",
            tree.split(" as ").next().unwrap().trim()
        ));
    }
}

/// The modules a file refers to: its `use` statements and every `crate::`/`super::` path in
/// its code.
fn references(text: &str, module: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for statement in text.split(';') {
        let statement = statement.trim();
        let body = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
            .or_else(|| statement.strip_prefix("use "))
            .or_else(|| statement.rsplit_once("\nuse ").map(|(_, b)| b))
            .or_else(|| statement.rsplit_once("\npub use ").map(|(_, b)| b));
        if let Some(body) = body {
            expand(body, "", &mut paths);
        }
    }
    for (i, _) in text.match_indices("crate::") {
        let path: String = text[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(path);
    }
    let mut resolved = Vec::new();
    for path in paths {
        let segments: Vec<String> = path
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let Some(first) = segments.first() else {
            continue;
        };
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "super" | "self" => {
                let mut base = module.to_vec();
                // A `mod.rs` is its folder's module: `super` of it is the folder's parent.
                if first == "super" {
                    base.pop();
                }
                let _ = is_mod_file;
                base
            }
            _ => continue,
        };
        let mut rest = segments[1..].iter().peekable();
        while rest.peek().is_some_and(|s| *s == "super") {
            base.pop();
            rest.next();
        }
        base.extend(rest.cloned());
        resolved.push(base);
    }
    resolved
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// File → the files it refers to (itself and `lib.rs`/`main.rs` left out).
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    source_files(&root().join("src"), &mut files);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .filter(|f| !f.ends_with("lib.rs") && !f.ends_with("main.rs"))
        .map(|f| module_of(f))
        .collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        if file.ends_with("lib.rs") || file.ends_with("main.rs") {
            continue;
        }
        let module = module_of(file);
        let text = std::fs::read_to_string(file).unwrap();
        // Test modules are not part of the house.
        let text = text.split("#[cfg(test)]").next().unwrap();
        let is_mod = file.ends_with("mod.rs");
        let mut targets = BTreeSet::new();
        for path in references(text, &module, is_mod) {
            if let Some(target) = file_of(&path, &modules) {
                if target != module && !target.is_empty() {
                    targets.insert(target);
                }
            }
        }
        graph.insert(module, targets);
    }
    graph
}

fn show(module: &[String]) -> String {
    format!("src/{}", module.join("/"))
}

#[test]
fn the_lower_floors_cannot_import_the_server() {
    for krate in ["runtime", "projections", "aggregates"] {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        assert!(
            !manifest.contains("ensemble"),
            "{krate}/Cargo.toml depends on the server"
        );
    }
    let runtime = std::fs::read_to_string(root().join("runtime/Cargo.toml")).unwrap();
    assert!(
        !runtime.contains("projections"),
        "runtime depends on the read models"
    );
}

#[test]
fn the_files_of_the_server_import_each_other_without_a_circle() {
    let graph = graph();
    assert!(graph.len() > 30, "only {} files read", graph.len());
    // Depth-first, with the path so far: a file met again on its own path closes a circle.
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.clone());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            let shown: Vec<String> = circle.iter().map(|m| show(m)).collect();
            panic!("a circle: {}", shown.join(" -> "));
        }
    }
}

#[test]
fn the_plumbing_imports_no_context_and_the_contexts_not_each_other() {
    let graph = graph();
    let under = |module: &[String], top: &str| module.first().is_some_and(|m| m == top);
    let mut wrong = Vec::new();
    for (from, targets) in &graph {
        for to in targets {
            let forbidden = (under(from, "http")
                && ["orchestra", "campus", "app", "api", "cli"]
                    .iter()
                    .any(|t| under(to, t)))
                || (under(from, "orchestra") && under(to, "campus"))
                || (under(from, "campus") && under(to, "orchestra"))
                || ((under(from, "orchestra") || under(from, "campus"))
                    && ["app", "api", "cli"].iter().any(|t| under(to, t)));
            if forbidden {
                wrong.push(format!("{} -> {}", show(from), show(to)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that run the wrong way: {wrong:#?}"
    );
    // The reader sees what it checks: the contexts do use the plumbing.
    assert!(graph
        .iter()
        .any(|(from, to)| under(from, "orchestra") && to.iter().any(|t| under(t, "http"))));
}
