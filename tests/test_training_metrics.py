"""Classification metrics vs scikit-learn; detection metrics vs a hand-worked example and pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest


def test_classification_metrics_match_sklearn():
    from sklearn import metrics as skm

    from training.metrics import confusion_matrix, precision_recall_f1, top_k_accuracy

    rng = np.random.default_rng(0)
    n, c = 300, 6
    y = rng.integers(0, c, n)
    scores = rng.normal(size=(n, c))
    scores[np.arange(n), y] += rng.normal(1.0, 1.0, n)  # better than chance, not perfect
    scores[:, 5] -= 10  # class 5 never predicted: zero_division paths
    pred = scores.argmax(1)
    for k in (1, 3, 5):
        assert top_k_accuracy(y, scores, k) == pytest.approx(
            skm.top_k_accuracy_score(y, scores, k=k, labels=range(c)), abs=1e-12)
    np.testing.assert_array_equal(confusion_matrix(y, pred, c), skm.confusion_matrix(y, pred, labels=range(c)))
    p, r, f, s = precision_recall_f1(y, pred, c)
    sp, sr, sf, ss = skm.precision_recall_fscore_support(y, pred, labels=range(c), zero_division=0)
    np.testing.assert_allclose(p, sp)
    np.testing.assert_allclose(r, sr)
    np.testing.assert_allclose(f, sf)
    np.testing.assert_array_equal(s, ss)
    for average in ("macro", "micro", "weighted"):
        got = precision_recall_f1(y, pred, c, average=average)[:3]
        want = skm.precision_recall_fscore_support(y, pred, labels=range(c), average=average, zero_division=0)[:3]
        np.testing.assert_allclose(got, want, err_msg=average)
    with pytest.raises(ValueError, match="average"):
        precision_recall_f1(y, pred, c, average="samples")


def test_classification_report_and_plot(tmp_path):
    from training.metrics import classification_report
    from training.plots import plot_confusion_matrix

    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.1, 0.2, 0.7]])
    report = classification_report([0, 1, 2, 2], scores, ["a", "b", "c"])
    assert report["top1_accuracy"] == 0.75 and "top5_accuracy" not in report
    assert report["confusion_matrix"].tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert report["per_class"]["c"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    path = plot_confusion_matrix(report["confusion_matrix"], tmp_path / "cm.png", ["a", "b", "c"])
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_iou_by_hand():
    from training.detection import box_iou

    a = [[0, 0, 10, 10]]
    b = [[5, 5, 15, 15], [10, 10, 20, 20], [0, 0, 10, 5], [20, 0, 30, 10]]
    np.testing.assert_allclose(box_iou(a, b), [[25 / 175, 0.0, 0.5, 0.0]])
    b_xywh = [[5, 5, 10, 10], [10, 10, 10, 10], [0, 0, 10, 5], [20, 0, 10, 10]]
    np.testing.assert_allclose(box_iou([[0, 0, 10, 10]], b_xywh, "xywh"), [[25 / 175, 0.0, 0.5, 0.0]])
    with pytest.raises(ValueError, match="box_format"):
        box_iou(a, b, "cxcywh")


def test_voc_ap_hand_worked(tmp_path):
    """One class, 3 ground truths in 2 images, 5 detections; worked by hand:

    by score: d1 TP (A), d4 TP (C, IoU .8), d2 FP (A again: duplicate), d3 FP (no overlap),
    d5 FP (IoU .4 with B).  precision 1, 1/2, 2/3, 1/2, 2/5; recall 1/3, 1/3, 2/3, 2/3, 2/3.
    all-point: 1/3 * 1 + 1/3 * 2/3 = 5/9.  11-point: r = 0..0.3 -> 1 (4x), 0.4..0.6 -> 2/3 (3x),
    0.7..1 -> 0: (4 + 2) / 11 = 6/11.
    """
    from training.detection import evaluate_voc
    from training.plots import plot_pr_curve

    gts = [dict(image_id=1, category_id="cat", bbox=[0, 0, 10, 10]),
           dict(image_id=1, category_id="cat", bbox=[20, 20, 30, 30]),
           dict(image_id=2, category_id="cat", bbox=[0, 0, 10, 10])]
    dets = [dict(image_id=1, category_id="cat", bbox=[0, 0, 10, 10], score=0.9),
            dict(image_id=1, category_id="cat", bbox=[0, 0, 10, 9], score=0.8),
            dict(image_id=2, category_id="cat", bbox=[50, 50, 60, 60], score=0.7),
            dict(image_id=2, category_id="cat", bbox=[0, 0, 10, 8], score=0.75),
            dict(image_id=1, category_id="cat", bbox=[20, 20, 30, 24], score=0.5)]
    all_point = evaluate_voc(gts, dets, method="all")
    assert all_point["AP"]["cat"] == pytest.approx(5 / 9, abs=1e-12)
    assert all_point["mAP"] == pytest.approx(5 / 9, abs=1e-12)
    recall, precision = all_point["curves"]["cat"]
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 1 / 2, 2 / 5])
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert all_point["precision"]["cat"] == pytest.approx(0.4) and all_point["recall"]["cat"] == pytest.approx(2 / 3)
    assert evaluate_voc(gts, dets, method="11point")["AP"]["cat"] == pytest.approx(6 / 11, abs=1e-12)
    # xywh input gives the same
    to_xywh = lambda b: [b[0], b[1], b[2] - b[0], b[3] - b[1]]  # noqa: E731
    same = evaluate_voc([{**g, "bbox": to_xywh(g["bbox"])} for g in gts],
                        [{**d, "bbox": to_xywh(d["bbox"])} for d in dets], box_format="xywh")
    assert same["AP"]["cat"] == pytest.approx(5 / 9, abs=1e-12)
    path = plot_pr_curve({"cat": (recall, precision)}, tmp_path / "pr.png")
    assert open(path, "rb").read(4) == b"\x89PNG"


def _synthetic_detections(seed=0, images=12, classes=(1, 2, 3)):
    """Ground truths of all sizes (small/medium/large), detections = jittered hits, duplicates,
    misses and random false positives, with a few tied scores."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for image in range(1, images + 1):
        for _ in range(rng.integers(0, 7)):
            cat = int(rng.choice(classes))
            side = float(rng.choice([rng.uniform(8, 30), rng.uniform(35, 90), rng.uniform(100, 200)]))
            w, h = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            x, y = rng.uniform(0, 400), rng.uniform(0, 300)
            gts.append(dict(image_id=image, category_id=cat, bbox=[x, y, w, h], area=w * h, iscrowd=0))
            for _ in range(rng.choice([0, 1, 1, 1, 2])):  # missed, found, or found twice
                jitter = rng.normal(0, 0.12, 4) * [w, h, w, h]
                box = [x + jitter[0], y + jitter[1], max(w + jitter[2], 1), max(h + jitter[3], 1)]
                label = cat if rng.random() > 0.1 else int(rng.choice(classes))
                dets.append(dict(image_id=image, category_id=label, bbox=box, score=float(rng.uniform(0.05, 1))))
        for _ in range(rng.integers(0, 4)):
            w, h = rng.uniform(5, 150, 2)
            dets.append(dict(image_id=image, category_id=int(rng.choice(classes)),
                             bbox=[rng.uniform(0, 400), rng.uniform(0, 300), w, h],
                             score=float(np.round(rng.uniform(0, 1), 1))))  # rounded: ties
    return gts, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_ap_matches_pycocotools(seed):
    pycocotools = pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from training.detection import evaluate_coco

    images = 12
    gts, dets = _synthetic_detections(seed, images)
    dataset = {
        "images": [{"id": i} for i in range(1, images + 1)],
        "categories": [{"id": c} for c in (1, 2, 3)],
        "annotations": [dict(g, id=i + 1) for i, g in enumerate(gts)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(d) for d in dets])
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ours = evaluate_coco(gts, dets, image_ids=list(range(1, images + 1)))
    names = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
    for name, reference in zip(names, evaluator.stats[:6]):
        assert abs(ours[name] - reference) <= 1e-6, (name, ours[name], reference)
    np.testing.assert_allclose(ours["precision"], evaluator.eval["precision"][..., -1], atol=1e-6)
    assert 0.05 < ours["AP"] < 0.95  # a non-trivial example
    for k, cat in enumerate((1, 2, 3)):
        p = evaluator.eval["precision"][:, :, k, 0, -1]
        assert ours["AP_per_class"][cat] == pytest.approx(np.mean(p[p > -1]), abs=1e-6)
