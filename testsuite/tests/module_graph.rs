//! The proxy's modules, and the runtime's (`shims/src/rt`), do not import each
//! other in circles (CONVENTIONS.md: helpers live in leaf modules). Reads the
//! sources, takes every `crate::a::b` and `super::c` path outside comments and
//! test modules as an edge to the module it names, and checks:
//!
//! 1. no cycle among modules, a module's edges to its own parent or
//!    submodules aside (`offload::vfork` calling `offload::serve` is one module);
//! 2. none among top-level modules either, each taken with its submodules;
//! 3. the proxy's leaf modules (host facilities and plain data) use no module
//!    but other leaves;
//! 4. the runtime's modules keep the layering `shims/src/rt/mod.rs` states: each
//!    imports only modules after it in that list.
//!
//! Test modules (`#[cfg(test)] mod tests { .. }` at the end of a file, and
//! `tests.rs` files) may reach across: test set-up is not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The proxy's modules that must stay leaves: they use no proxy module but these.
const LEAVES: &[&str] = &[
    "say", "cpus", "fds", "futex", "event", "images", "guest", "boot", "platform", "spinners",
    "numa", "tsc", "ticks", "lwk", "kvmfd", "timeline",
];

/// The runtime's modules in the order of `shims/src/rt/mod.rs`'s layering: each
/// may import only modules of a later layer, the leaves (last) only each other.
const RT_LAYERS: &[&[&str]] = &[
    &["entry"],
    &["hosted"],
    &["call"],
    &["fork"],
    &["threads"],
    &["sig"],
    &["tick"],
    &["platform"],
    &["kvm"],
    &["edge", "ikc", "percpu", "locks", "fpu", "heap", "trace"],
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read the source folder") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` -> `a::b`; `src/main.rs` -> "".
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "main") {
        parts.pop();
    }
    parts.join("::")
}

/// The text that counts: no comments, nothing from the file's test module on.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut test_attr = false;
    for line in text.lines() {
        let t = line.trim_start();
        if test_attr && t.starts_with("mod tests") && t.trim_end().ends_with('{') {
            break;
        }
        test_attr = t.starts_with("#[cfg(test)]");
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path after `crate::` or `super::` in `code`, as module paths relative
/// to the crate root (`super` resolved against `module`). A `{a, b::c}` group
/// gives one path per member (one level deep, as the proxy writes them).
fn paths(code: &str, module: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (start, _) in code.match_indices("::") {
        let head_start = code[..start]
            .rfind(|c: char| !is_ident(c))
            .map_or(0, |i| i + 1);
        let head = &code[head_start..start];
        let base = match head {
            "crate" => String::new(),
            "super" => {
                // Only the first `super::` of a path.
                if code[..head_start].ends_with("::") {
                    continue;
                }
                match module.rfind("::") {
                    Some(i) => module[..i].to_string(),
                    None => String::new(),
                }
            }
            _ => continue,
        };
        let rest = &code[start + 2..];
        let join = |p: &str| {
            if base.is_empty() {
                p.to_string()
            } else if p.is_empty() {
                base.clone()
            } else {
                format!("{base}::{p}")
            }
        };
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let m: String = member
                    .trim()
                    .chars()
                    .take_while(|&c| is_ident(c) || c == ':')
                    .collect();
                out.push(join(m.trim_end_matches(':')));
            }
        } else {
            let p: String = rest
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            out.push(join(p.trim_end_matches(':')));
        }
    }
    out
}

/// The longest known module that `path` starts with ("" when none).
fn resolve(path: &str, modules: &BTreeSet<String>) -> String {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
        .unwrap_or_default()
}

fn related(a: &str, b: &str) -> bool {
    let within = |x: &str, y: &str| x.starts_with(&format!("{y}::"));
    a == b || within(a, b) || within(b, a)
}

/// The import graph of crate `krate`'s modules (`<krate>/src`), those under
/// module `under` when given (the crate root's own edges are a parent's).
fn graph_of(krate: &str, under: Option<&str>) -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g = Graph::new();
    for f in &files {
        let m = module_of(&src, f);
        if m.is_empty() || under.is_some_and(|u| !related(&m, u)) {
            continue;
        }
        g.entry(m.clone()).or_default();
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read source");
        for p in paths(&code(&text), &m) {
            let to = resolve(&p, &modules);
            if !to.is_empty() && !related(&m, &to) {
                g.entry(m.clone()).or_default().insert(to);
            }
        }
    }
    g
}

fn graph() -> Graph {
    graph_of("proxy", None)
}

fn runtime_graph() -> Graph {
    graph_of("shims", Some("rt"))
}

/// A cycle in `g`, as the modules along it, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &Graph,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let i = stack.iter().position(|s| s == m).expect("on stack");
                    let mut c = stack[i..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn show(g: &Graph) -> String {
    g.iter()
        .map(|(m, to)| {
            format!(
                "  {m} -> {}\n",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect()
}

#[test]
fn proxy_modules_import_each_other_without_cycles() {
    let g = graph();
    assert!(
        g.contains_key("offload::forward"),
        "the scan found the modules:\n{}",
        show(&g)
    );
    assert!(
        g["run"].contains("offload") && g["offload"].contains("mirror"),
        "the scan found the edges:\n{}",
        show(&g)
    );
    if let Some(c) = find_cycle(&g) {
        panic!("module cycle: {}\nedges:\n{}", c.join(" -> "), show(&g));
    }
}

/// `g` with each module taken together with its submodules, at `depth` path
/// components (1: top-level modules; 2: `rt::x`).
fn collapse(g: &Graph, depth: usize) -> Graph {
    let top = |m: &str| m.split("::").take(depth).collect::<Vec<_>>().join("::");
    let mut out = Graph::new();
    for (m, to) in g {
        let e = out.entry(top(m)).or_default();
        e.extend(to.iter().map(|t| top(t)).filter(|t| *t != top(m)));
    }
    out
}

#[test]
fn top_level_modules_with_their_submodules_have_no_cycles() {
    let g = collapse(&graph(), 1);
    if let Some(c) = find_cycle(&g) {
        panic!("module cycle: {}\nedges:\n{}", c.join(" -> "), show(&g));
    }
}

#[test]
fn runtime_modules_import_each_other_without_cycles() {
    let g = runtime_graph();
    assert!(
        g.contains_key("rt::hosted::traps") && g["rt::threads"].contains("rt::platform"),
        "the scan found the modules and edges:\n{}",
        show(&g)
    );
    for g in [g.clone(), collapse(&g, 2)] {
        if let Some(c) = find_cycle(&g) {
            panic!("module cycle: {}\nedges:\n{}", c.join(" -> "), show(&g));
        }
    }
}

#[test]
fn runtime_modules_keep_their_layering() {
    let g = collapse(&runtime_graph(), 2);
    let layer = |m: &str| {
        let name = m.strip_prefix("rt::").unwrap_or(m);
        RT_LAYERS
            .iter()
            .position(|l| l.contains(&name))
            .unwrap_or_else(|| panic!("{m} is in no layer of RT_LAYERS (shims/src/rt/mod.rs)"))
    };
    let leaves = RT_LAYERS.len() - 1;
    let mut wrong = Vec::new();
    for (m, to) in &g {
        for t in to {
            let (a, b) = (layer(m), layer(t));
            if b < a || (b == a && a != leaves) {
                wrong.push(format!("{m} uses {t}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "against the layering of shims/src/rt/mod.rs: {}\nedges:\n{}",
        wrong.join("; "),
        show(&g)
    );
}

#[test]
fn leaf_modules_use_only_leaves() {
    let g = graph();
    for leaf in LEAVES {
        let to = g.get(*leaf).unwrap_or_else(|| panic!("no module {leaf}"));
        let others: Vec<_> = to
            .iter()
            .filter(|t| !LEAVES.contains(&t.as_str()))
            .collect();
        assert!(
            others.is_empty(),
            "leaf module {leaf} uses {others:?}; leaves: {LEAVES:?}"
        );
    }
}

#[test]
fn the_scanner_reads_groups_super_and_skips_comments() {
    let code = code(
        "use crate::{args, info::Backend};\n\
         // crate::commented::out\n\
         let x = super::child::pin_self();\n\
         crate::say!(\"x\");\n\
         #[cfg(test)]\nmod tests {\n use crate::test_only;\n}\n",
    );
    assert_eq!(
        paths(&code, "bench::load"),
        ["args", "info::Backend", "bench::child::pin_self", "say"]
    );
}
