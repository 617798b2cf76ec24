//! Architecture invariant (ARCHITECTURE.md): no two modules import each
//! other. Reads src/ as text: for every file, the crate modules its
//! production code names (`crate::a`, `use crate::{a, b::c}`, and
//! `super::x` for a sibling file of a directory module), with the unit
//! tests (`#[cfg(test)] mod tests`, a directory's tests.rs) left out; then
//! fails naming every pair that names each other, at the top level
//! (`listeners` and `config`) and between the files of one directory
//! (`config::settings` and `config::types`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module: its path below the crate root (`["config", "types"]`).
type Module = Vec<String>;

#[test]
fn no_two_modules_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    assert!(files.len() > 20, "src/ has {} .rs files?", files.len());
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for file in &files {
        let me = module_of(&src, file);
        if me.is_empty() || me.last().is_some_and(|m| m == "tests") {
            continue; // lib.rs, main.rs, and whole test modules
        }
        let text = fs::read_to_string(file).expect("read a source file");
        for named in names(&production(&text)) {
            for edge in edges_of(&me, &named, &modules) {
                edges
                    .entry(me_at(&me, edge.len()))
                    .or_default()
                    .insert(edge);
            }
        }
    }
    let mut cycles = Vec::new();
    for (a, targets) in &edges {
        for b in targets {
            if a < b && edges.get(b).is_some_and(|back| back.contains(a)) {
                cycles.push(format!("{} <-> {}", a.join("::"), b.join("::")));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other: {cycles:?}; move what both need where \
         one of them (or a third module) owns it"
    );
    // The check sees the graph at all: these edges exist today.
    let has = |a: &[&str], b: &[&str]| {
        let a: Module = a.iter().map(|s| s.to_string()).collect();
        let b: Module = b.iter().map(|s| s.to_string()).collect();
        edges.get(&a).is_some_and(|t| t.contains(&b))
    };
    assert!(has(&["listeners"], &["config"]), "{edges:?}");
    assert!(has(&["config"], &["bind"]), "{edges:?}");
    assert!(
        has(&["config", "settings"], &["config", "types"]),
        "{edges:?}"
    );
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/config/types.rs` → `[config, types]`; `src/sys/mod.rs` → `[sys]`;
/// `src/lib.rs` → `[]`.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file
        .strip_prefix(src)
        .expect("below src/")
        .with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    } else if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The first `depth` parts of `me` (its top-level module, or itself).
fn me_at(me: &Module, depth: usize) -> Module {
    me[..depth.min(me.len())].to_vec()
}

/// The text before the unit-test module, without `//` comments.
fn production(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| {
            w[0].trim() == "#[cfg(test)]"
                && (w[1].starts_with("mod tests") || w[1].starts_with("pub mod tests"))
        })
        .unwrap_or(lines.len());
    lines[..end]
        .iter()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths named after `crate::` and `super::`, each as its first two
/// identifiers, with the prefix kept: `["crate", "config", "Config"]`.
fn names(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for prefix in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `$crate::` or part of a longer name
            }
            let head = prefix.trim_end_matches(':').to_string();
            for path in paths(rest) {
                let mut p = vec![head.clone()];
                p.extend(path);
                out.push(p);
            }
        }
    }
    out
}

/// The paths at the start of `s`: `a::b` → `[[a, b]]`, `{a, b::c}` →
/// `[[a], [b, c]]` (nested groups give their first identifier).
fn paths(s: &str) -> Vec<Vec<String>> {
    if let Some(group) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut end = group.len();
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    end = i;
                    break;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        let mut out = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        let inner = &group[..end];
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(paths(inner[start..i].trim()));
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.extend(paths(inner[start..].trim()));
        return out;
    }
    let idents: Vec<String> = s
        .split("::")
        .take(2)
        .map(|seg| {
            seg.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|seg| !seg.is_empty())
        .collect();
    if idents.is_empty() {
        Vec::new()
    } else {
        vec![idents]
    }
}

/// The module edges that `named` (a path from [`names`]) makes from `me`:
/// to another top-level module, and to a sibling file of the same
/// directory module.
fn edges_of(me: &Module, named: &[String], modules: &BTreeSet<Module>) -> Vec<Module> {
    let mut out = Vec::new();
    let target: Module = match named[0].as_str() {
        "crate" => named[1..].to_vec(),
        // `super::x` in `[dir, file]` is `[dir, x]`; in a top-level file
        // it is the crate root, which no module edge needs.
        "super" if me.len() == 2 => {
            let mut t = vec![me[0].clone()];
            t.extend(named[1..].iter().take(1).cloned());
            t
        }
        _ => return out,
    };
    if target.is_empty() {
        return out;
    }
    let top = vec![target[0].clone()];
    if modules.contains(&top) && top[0] != me[0] {
        out.push(top);
    }
    if me.len() == 2 && target.len() >= 2 && target[0] == me[0] && target[1] != me[1] {
        let sibling = target[..2].to_vec();
        if modules.contains(&sibling) {
            out.push(sibling);
        }
    }
    out
}
