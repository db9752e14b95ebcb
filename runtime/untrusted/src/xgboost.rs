//! XGBoost boosters from bytes. libxgboost trusts a model's numbers: a
//! child index past the tree, a split on a feature the input does not
//! have, a `tree_info` longer than the trees, each indexes an array out of
//! bounds during prediction (SIGSEGV, or SIGABRT from an assertion), and
//! takes the server with it.
//!
//! [`check`] accepts the JSON that `Booster.save_model("….json")` writes
//! and checks every index and count against the model's own sizes: trees
//! are well-formed binary trees whose children come after their parent (so
//! there are no cycles), splits name features below `num_feature`, and the
//! per-tree and per-node arrays have the lengths the counts promise.
//! Arrays whose values libxgboost only reads as numbers are counted, never
//! stored, so the check's memory stays a small fraction of the input's.
//! UBJSON, categorical splits and vector-leaf (multi-target) trees are
//! refused from bytes: their extra structure is not checked here, so they
//! load only from the model directory.

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

/// Most features a model may declare.
pub const MAX_FEATURES: i64 = 1 << 24;
/// Most classes or targets a model may declare.
pub const MAX_GROUPS: i64 = 1 << 16;
/// Deepest tree accepted: libxgboost walks trees recursively, and a chain a
/// few hundred thousand splits deep overflows its thread's stack.
pub const MAX_TREE_DEPTH: usize = 1024;

/// Why an XGBoost model was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XgbError {
    /// Not JSON in the layout XGBoost saves.
    #[error("not an XGBoost JSON model: {0}")]
    Malformed(String),
    /// A format this check does not cover.
    #[error(
        "{0} are not accepted from bytes; put the model in the model directory and open it by name"
    )]
    Unchecked(&'static str),
    /// A number or index that does not fit the model.
    #[error("the model is inconsistent: {0}")]
    Inconsistent(String),
}

/// The sizes of a model that passed.
#[derive(Debug, PartialEq, Eq)]
pub struct Facts {
    /// Features the input must have.
    pub features: i64,
    /// Trees in the model.
    pub trees: usize,
}

/// Counts the elements of a JSON array without keeping them.
#[derive(Default)]
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
struct Model {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    learner_model_param: LearnerParam,
    gradient_booster: Booster,
}

/// XGBoost writes these numbers as strings.
#[derive(Deserialize)]
struct LearnerParam {
    num_feature: String,
    #[serde(default)]
    num_class: Option<String>,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Booster {
    name: String,
    #[serde(default)]
    model: Option<GbTree>,
    /// dart keeps its trees one level down.
    #[serde(default)]
    gbtree: Option<Box<Booster>>,
    #[serde(default)]
    weight_drop: Option<Count>,
}

#[derive(Deserialize)]
struct GbTree {
    gbtree_model_param: GbTreeParam,
    /// Categorical re-coding (XGBoost 3): indexes nothing checked here.
    #[serde(default)]
    cats: Option<Cats>,
    trees: Vec<Tree>,
    tree_info: Vec<i64>,
    #[serde(default)]
    iteration_indptr: Option<Vec<i64>>,
}

#[derive(Deserialize)]
struct Cats {
    #[serde(default)]
    enc: Option<Count>,
    #[serde(default)]
    sorted_idx: Option<Count>,
    #[serde(default)]
    feature_segments: Option<Vec<i64>>,
}

#[derive(Deserialize)]
struct GbTreeParam {
    num_trees: String,
}

#[derive(Deserialize)]
struct TreeParam {
    num_nodes: String,
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

#[derive(Deserialize)]
struct Tree {
    tree_param: TreeParam,
    #[serde(default)]
    id: Option<i64>,
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    parents: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Count,
    default_left: Count,
    #[serde(default)]
    split_type: Option<Vec<i64>>,
    base_weights: Count,
    #[serde(default)]
    loss_changes: Option<Count>,
    #[serde(default)]
    sum_hessian: Option<Count>,
    #[serde(default)]
    categories_nodes: Option<Count>,
}

fn int(what: &str, s: &str) -> Result<i64, XgbError> {
    s.trim()
        .parse::<i64>()
        .map_err(|_| XgbError::Malformed(format!("{what} is '{}', not an integer", cut(s))))
}

fn cut(s: &str) -> String {
    s.chars().take(32).collect()
}

fn bad(msg: String) -> XgbError {
    XgbError::Inconsistent(msg)
}

/// Whether `bytes` is a JSON booster, the one form [`check`] reads
/// (UBJSON also starts with `{`, followed by a length marker `L`).
pub fn is_json(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{') && bytes.get(1) != Some(&b'L')
}

/// Checks `bytes` (an XGBoost JSON booster).
pub fn check(bytes: &[u8]) -> Result<Facts, XgbError> {
    if !is_json(bytes) {
        return Err(XgbError::Unchecked(
            "UBJSON and binary XGBoost models (save it as .json)",
        ));
    }
    let model: Model =
        serde_json::from_slice(bytes).map_err(|e| XgbError::Malformed(e.to_string()))?;
    let param = &model.learner.learner_model_param;
    let features = int("num_feature", &param.num_feature)?;
    if !(1..=MAX_FEATURES).contains(&features) {
        return Err(bad(format!(
            "num_feature {features} is outside 1..={MAX_FEATURES}"
        )));
    }
    let group = |what, v: &Option<String>| -> Result<i64, XgbError> {
        let n = v.as_deref().map_or(Ok(0), |s| int(what, s))?;
        if !(0..=MAX_GROUPS).contains(&n) {
            return Err(bad(format!("{what} {n} is outside 0..={MAX_GROUPS}")));
        }
        Ok(n)
    };
    let groups = group("num_class", &param.num_class)?
        .max(group("num_target", &param.num_target)?)
        .max(1);
    let booster = &model.learner.gradient_booster;
    let trees = match booster.name.as_str() {
        "gbtree" => gbtree(booster, features, groups)?,
        "dart" => {
            let inner = booster
                .gbtree
                .as_deref()
                .ok_or_else(|| XgbError::Malformed("a dart booster without its gbtree".into()))?;
            let trees = gbtree(inner, features, groups)?;
            let drops = booster.weight_drop.as_ref().map_or(0, |c| c.0);
            if drops != trees {
                return Err(bad(format!(
                    "dart has {drops} tree weights for {trees} trees"
                )));
            }
            trees
        }
        "gblinear" => return Err(XgbError::Unchecked("gblinear models")),
        other => {
            return Err(XgbError::Malformed(format!(
                "unknown booster '{}'",
                cut(other)
            )));
        }
    };
    Ok(Facts { features, trees })
}

/// Checks a gbtree booster's trees; returns how many there are.
fn gbtree(booster: &Booster, features: i64, groups: i64) -> Result<usize, XgbError> {
    let model = booster
        .model
        .as_ref()
        .ok_or_else(|| XgbError::Malformed("a gbtree booster without its model".into()))?;
    let n = model.trees.len();
    let declared = int("num_trees", &model.gbtree_model_param.num_trees)?;
    if declared != n as i64 || model.tree_info.len() != n {
        return Err(bad(format!(
            "num_trees is {declared} and tree_info has {} entries, for {n} trees",
            model.tree_info.len()
        )));
    }
    if let Some(g) = model.tree_info.iter().find(|&&g| !(0..groups).contains(&g)) {
        return Err(bad(format!(
            "tree_info names output group {g}; the model has {groups}"
        )));
    }
    if let Some(cats) = &model.cats {
        let used = |c: &Option<Count>| c.as_ref().is_some_and(|c| c.0 > 0);
        if used(&cats.enc)
            || used(&cats.sorted_idx)
            || cats
                .feature_segments
                .as_ref()
                .is_some_and(|f| f.iter().any(|&x| x != 0))
        {
            return Err(XgbError::Unchecked("categorical encodings"));
        }
    }
    if let Some(ptr) = &model.iteration_indptr {
        let ordered = ptr.windows(2).all(|w| w[0] <= w[1]);
        if ptr.first() != Some(&0) || ptr.last() != Some(&(n as i64)) || !ordered {
            return Err(bad(format!(
                "iteration_indptr does not run in order from 0 to the {n} trees"
            )));
        }
    }
    for (t, tree) in model.trees.iter().enumerate() {
        if tree.id.is_some_and(|id| id != t as i64) {
            return Err(bad(format!("tree {t} says it is tree {:?}", tree.id)));
        }
        check_tree(tree, features).map_err(|m| bad(format!("tree {t}: {m}")))?;
    }
    Ok(n)
}

fn check_tree(tree: &Tree, features: i64) -> Result<(), String> {
    let nodes = tree
        .tree_param
        .num_nodes
        .trim()
        .parse::<usize>()
        .map_err(|_| {
            format!(
                "num_nodes '{}' is not a count",
                cut(&tree.tree_param.num_nodes)
            )
        })?;
    if nodes == 0 {
        return Err("it has no nodes".into());
    }
    let leaf = tree
        .tree_param
        .size_leaf_vector
        .as_deref()
        .map_or("1", str::trim);
    if !matches!(leaf, "0" | "1") {
        return Err(XgbError::Unchecked("vector-leaf (multi-target) trees").to_string());
    }
    if tree
        .split_type
        .as_ref()
        .is_some_and(|s| s.iter().any(|&t| t != 0))
        || tree.categories_nodes.as_ref().is_some_and(|c| c.0 > 0)
    {
        return Err(XgbError::Unchecked("categorical splits").to_string());
    }
    let lengths = [
        ("left_children", tree.left_children.len()),
        ("right_children", tree.right_children.len()),
        ("parents", tree.parents.len()),
        ("split_indices", tree.split_indices.len()),
        ("split_conditions", tree.split_conditions.0),
        ("default_left", tree.default_left.0),
        ("base_weights", tree.base_weights.0),
        (
            "split_type",
            tree.split_type.as_ref().map_or(nodes, Vec::len),
        ),
        (
            "loss_changes",
            tree.loss_changes.as_ref().map_or(nodes, |c| c.0),
        ),
        (
            "sum_hessian",
            tree.sum_hessian.as_ref().map_or(nodes, |c| c.0),
        ),
    ];
    if let Some((name, len)) = lengths.iter().find(|(_, len)| *len != nodes) {
        return Err(format!("{name} has {len} entries for {nodes} nodes"));
    }
    for i in 0..nodes {
        let (l, r) = (tree.left_children[i], tree.right_children[i]);
        if l == -1 && r == -1 {
            continue;
        }
        for (side, c) in [("left", l), ("right", r)] {
            // Children come after their parent: no cycles, no self-loops.
            if c <= i as i64 || c >= nodes as i64 {
                return Err(format!(
                    "node {i}'s {side} child is {c}, not a later node below {nodes}"
                ));
            }
            if tree.parents[c as usize] != i as i64 {
                return Err(format!("node {c}'s parent is not node {i}"));
            }
        }
        if l == r {
            return Err(format!("node {i}'s children are the same node"));
        }
        let f = tree.split_indices[i];
        if !(0..features).contains(&f) {
            return Err(format!(
                "node {i} splits on feature {f}; the model has {features}"
            ));
        }
    }
    // Every node but the root hangs from an earlier node that names it as
    // a child (libxgboost reads each node's parent, reachable or not); the
    // root has no parent. Depth follows, since parents come first.
    if !matches!(tree.parents[0], -1 | 2147483647) {
        return Err(format!("the root's parent is {}", tree.parents[0]));
    }
    let mut depth = vec![0usize; nodes];
    for i in 1..nodes {
        let p = tree.parents[i];
        let named = usize::try_from(p).ok().filter(|&p| {
            p < i && (tree.left_children[p] == i as i64 || tree.right_children[p] == i as i64)
        });
        let Some(p) = named else {
            return Err(format!("node {i}'s parent {p} does not name it as a child"));
        };
        depth[i] = depth[p] + 1;
        if depth[i] > MAX_TREE_DEPTH {
            return Err(format!("it is deeper than {MAX_TREE_DEPTH} levels"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A two-class booster: one tree, root split on feature 1.
    fn model() -> Value {
        json!({"learner": {
            "learner_model_param": {"num_feature": "4", "num_class": "0", "num_target": "1", "base_score": "5E-1"},
            "objective": {"name": "binary:logistic"},
            "gradient_booster": {"name": "gbtree", "model": {
                "gbtree_model_param": {"num_trees": "1", "num_parallel_tree": "1"},
                "iteration_indptr": [0, 1],
                "tree_info": [0],
                "trees": [{
                    "tree_param": {"num_nodes": "3", "size_leaf_vector": "1", "num_feature": "4", "num_deleted": "0"},
                    "id": 0,
                    "left_children": [1, -1, -1],
                    "right_children": [2, -1, -1],
                    "parents": [2147483647, 0, 0],
                    "split_indices": [1, 0, 0],
                    "split_conditions": [0.5, -0.2, 0.3],
                    "split_type": [0, 0, 0],
                    "default_left": [1, 0, 0],
                    "base_weights": [0.0, -0.2, 0.3],
                    "loss_changes": [1.0, 0.0, 0.0],
                    "sum_hessian": [2.0, 1.0, 1.0],
                    "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": []
                }]
            }}
        }, "version": [3, 2, 0]})
    }

    fn checked(edit: impl FnOnce(&mut Value)) -> Result<Facts, XgbError> {
        let mut m = model();
        edit(&mut m);
        check(&serde_json::to_vec(&m).unwrap())
    }

    fn tree(m: &mut Value) -> &mut Value {
        &mut m["learner"]["gradient_booster"]["model"]["trees"][0]
    }

    #[test]
    fn a_saved_model_passes() {
        assert_eq!(
            checked(|_| {}),
            Ok(Facts {
                features: 4,
                trees: 1
            })
        );
    }

    /// A named corruption of a valid model.
    type Case = (&'static str, Box<dyn FnOnce(&mut Value)>);

    #[test]
    fn every_index_and_count_is_checked() {
        let cases: Vec<Case> = vec![
            (
                "child past the tree",
                Box::new(|m| tree(m)["left_children"][0] = json!(1000000)),
            ),
            (
                "child cycle",
                Box::new(|m| tree(m)["right_children"][0] = json!(0)),
            ),
            (
                "self child",
                Box::new(|m| {
                    tree(m)["left_children"][1] = json!(1);
                    tree(m)["right_children"][1] = json!(2);
                }),
            ),
            (
                "one-sided leaf",
                Box::new(|m| tree(m)["left_children"][2] = json!(1)),
            ),
            (
                "split feature",
                Box::new(|m| tree(m)["split_indices"][0] = json!(100000000)),
            ),
            (
                "negative feature",
                Box::new(|m| tree(m)["split_indices"][0] = json!(-1)),
            ),
            (
                "tree_info longer",
                Box::new(|m| {
                    m["learner"]["gradient_booster"]["model"]["tree_info"] = json!([0, 0, 0])
                }),
            ),
            (
                "tree_info group",
                Box::new(|m| m["learner"]["gradient_booster"]["model"]["tree_info"] = json!([5])),
            ),
            (
                "num_trees",
                Box::new(|m| {
                    m["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] =
                        json!("9")
                }),
            ),
            (
                "short array",
                Box::new(|m| tree(m)["split_conditions"] = json!([0.5])),
            ),
            (
                "num_nodes",
                Box::new(|m| tree(m)["tree_param"]["num_nodes"] = json!("4")),
            ),
            (
                "num_feature",
                Box::new(|m| m["learner"]["learner_model_param"]["num_feature"] = json!("-4")),
            ),
            ("parents", Box::new(|m| tree(m)["parents"][1] = json!(7))),
            (
                "indptr",
                Box::new(|m| {
                    m["learner"]["gradient_booster"]["model"]["iteration_indptr"] = json!([0, 5])
                }),
            ),
        ];
        for (what, edit) in cases {
            assert!(
                matches!(
                    checked(edit),
                    Err(XgbError::Inconsistent(_) | XgbError::Malformed(_))
                ),
                "{what} was not refused"
            );
        }
    }

    #[test]
    fn formats_it_does_not_check_are_refused_with_a_reason() {
        for (what, edit) in [
            (
                "categorical",
                Box::new(|m: &mut Value| tree(m)["split_type"][0] = json!(1))
                    as Box<dyn FnOnce(&mut Value)>,
            ),
            (
                "vector leaf",
                Box::new(|m: &mut Value| tree(m)["tree_param"]["size_leaf_vector"] = json!("3")),
            ),
        ] {
            let e = checked(edit).unwrap_err().to_string();
            assert!(e.contains("not accepted from bytes"), "{what}: {e}");
        }
        let ubj = b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{";
        assert!(matches!(check(ubj), Err(XgbError::Unchecked(_))));
        assert!(matches!(check(b"[1,2]"), Err(XgbError::Unchecked(_))));
        assert!(matches!(
            check(b"{\"learner\": 1}"),
            Err(XgbError::Malformed(_))
        ));
    }
}
