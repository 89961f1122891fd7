"""Detection metrics: IoU, greedy matching, precision/recall, AP (VOC and COCO styles), mAP.

The notes' definitions (004): a detection is a true positive when its IoU with
a ground-truth box of the same class exceeds the threshold and that box was
not already matched (each ground truth counts once; extra detections on it are
false positives); precision = TP / (TP + FP), recall = TP / (TP + FN); AP is
the area under the precision-recall curve; mAP the mean of AP over classes.

- VOC style (`evaluate_voc`): IoU > 0.5, each detection is matched to the
  ground truth it overlaps most (an FP if that one is taken), AP by the
  11-point interpolation (VOC2007) or the area under the monotone envelope at
  every recall change (VOC2010+, "all").
- COCO style (`evaluate_coco`): IoU 0.50:0.05:0.95, 101 recall points, up to
  100 detections per image, area ranges small (< 32^2), medium, large
  (> 96^2). It reproduces pycocotools' COCOeval bbox evaluation exactly
  (matching order, ignore rules, interpolation), for crowd-free annotations.

Boxes are continuous coordinates (no VOC "+1" pixel convention).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

# pycocotools' Params, written the same way so the floating-point values are identical
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
COCO_AREA_RANGES = {"all": (0, 1e5**2), "small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 1e5**2)}


def to_xyxy(boxes, box_format="xyxy"):
    """(N, 4) boxes as x1, y1, x2, y2; `box_format` "xyxy" or "xywh" (x, y of the top-left corner, width, height)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if box_format == "xyxy":
        return boxes
    if box_format == "xywh":
        return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    raise ValueError(f"`box_format` must be 'xyxy' or 'xywh'. Received: box_format={box_format!r}")


def box_iou(boxes_a, boxes_b, box_format="xyxy"):
    """Pairwise IoU, (N, M): intersection area / union area (0 for empty unions)."""
    a, b = to_xyxy(boxes_a, box_format), to_xyxy(boxes_b, box_format)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_detections(det_boxes, det_scores, gt_boxes, iou_threshold=0.5, box_format="xyxy"):
    """Greedy matching of one image's detections (one class) to its ground truths.

    Detections are visited from the highest score; each takes the ground truth
    it overlaps most; it is a TP if that IoU > `iou_threshold` and the ground
    truth is still free, else an FP (duplicates included).

    Returns:
        (order, is_tp, matched_gt): detection indices by descending score, a bool
        array (TP flags in that order), and the matched ground-truth index or -1.
    """
    det_scores = np.asarray(det_scores, dtype=np.float64).ravel()
    order = np.argsort(-det_scores, kind="mergesort")
    is_tp = np.zeros(len(order), dtype=bool)
    matched = np.full(len(order), -1)
    if len(order) == 0 or len(gt_boxes) == 0:
        return order, is_tp, matched
    ious = box_iou(np.asarray(det_boxes)[order], gt_boxes, box_format)
    taken = np.zeros(ious.shape[1], dtype=bool)
    for i, row in enumerate(ious):
        best = int(np.argmax(row))
        if row[best] > iou_threshold and not taken[best]:
            taken[best] = True
            is_tp[i] = True
            matched[i] = best
    return order, is_tp, matched


def precision_recall(is_tp, scores, num_gt):
    """Precision and recall after each detection, ranked by descending score.

    Args:
        is_tp: TP flags of all detections of one class (any order, matched per image).
        scores: their scores.
        num_gt: ground truths of that class (TP + FN).

    Returns:
        (precision, recall, sorted scores) arrays.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    tp = np.asarray(is_tp, dtype=bool)[order]
    tp_cum = np.cumsum(tp)
    fp_cum = np.cumsum(~tp)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    recall = tp_cum / num_gt if num_gt else np.zeros_like(tp_cum, dtype=float)
    return precision, recall, scores[order]


def voc_ap(recall, precision, method="all"):
    """Average precision from a P-R curve (recall non-decreasing).

    Args:
        method: "11point" (VOC2007: mean over recall 0, 0.1, ..., 1 of the best
            precision at recall >= r) or "all" (VOC2010+: area under the curve
            made monotone, summed where recall changes).
    """
    recall, precision = np.asarray(recall, float), np.asarray(precision, float)
    if method == "11point":
        return float(np.mean([precision[recall >= t].max() if np.any(recall >= t) else 0.0
                              for t in np.linspace(0, 1, 11)]))
    if method != "all":
        raise ValueError(f"`method` must be '11point' or 'all'. Received: method={method!r}")
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    change = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def _group(records, keys):
    groups = defaultdict(list)
    for record in records:
        groups[tuple(record[k] for k in keys)].append(record)
    return groups


def evaluate_voc(ground_truths, detections, iou_threshold=0.5, method="all", box_format="xyxy"):
    """VOC-style per-class AP and mAP.

    Args:
        ground_truths: dicts {"image_id", "category_id", "bbox"}.
        detections: dicts {"image_id", "category_id", "bbox", "score"}.
        iou_threshold: a detection needs IoU > this.
        method: "all" or "11point" (see `voc_ap`).
        box_format: "xyxy" or "xywh".

    Returns:
        dict: "mAP", "AP" {class: AP}, "curves" {class: (recall, precision)},
        "precision"/"recall" {class: final value}.
    """
    gts = _group(ground_truths, ("category_id", "image_id"))
    dets = _group(detections, ("category_id", "image_id"))
    classes = sorted({g["category_id"] for g in ground_truths})
    result = {"AP": {}, "curves": {}, "precision": {}, "recall": {}}
    for cls in classes:
        flags, scores = [], []
        num_gt = sum(len(v) for (c, _), v in gts.items() if c == cls)
        images = {i for (c, i) in list(gts) + list(dets) if c == cls}
        for image in sorted(images, key=str):
            d = dets.get((cls, image), [])
            g = gts.get((cls, image), [])
            order, is_tp, _ = match_detections([x["bbox"] for x in d], [x["score"] for x in d],
                                               [x["bbox"] for x in g], iou_threshold, box_format)
            flags.append(is_tp)
            scores.append(np.asarray([x["score"] for x in d], float)[order])
        flags = np.concatenate(flags) if flags else np.zeros(0, bool)
        scores = np.concatenate(scores) if scores else np.zeros(0)
        precision, recall, _ = precision_recall(flags, scores, num_gt)
        result["AP"][cls] = voc_ap(recall, precision, method)
        result["curves"][cls] = (recall, precision)
        result["precision"][cls] = float(precision[-1]) if len(precision) else 0.0
        result["recall"][cls] = float(recall[-1]) if len(recall) else 0.0
    result["mAP"] = float(np.mean(list(result["AP"].values()))) if classes else 0.0
    return result


# --------------------------------------------------------------------------- COCO style


def _coco_image(gts, dets, area_range, max_dets, iou_thresholds):
    """pycocotools COCOeval.evaluateImg for one (image, category, area range), crowd-free."""
    if not gts and not dets:
        return None
    gt_area = np.array([g.get("area", g["bbox"][2] * g["bbox"][3]) for g in gts], float)
    gt_ignore = ((gt_area < area_range[0]) | (gt_area > area_range[1])).astype(int)
    gt_order = np.argsort(gt_ignore, kind="mergesort")
    gt_ignore = gt_ignore[gt_order]
    det_order = np.argsort([-d["score"] for d in dets], kind="mergesort")[:max_dets]
    dets = [dets[i] for i in det_order]
    ious = (box_iou([d["bbox"] for d in dets], [gts[i]["bbox"] for i in gt_order], "xywh")
            if dets and gts else np.zeros((len(dets), len(gts))))
    T, D, G = len(iou_thresholds), len(dets), len(gts)
    det_matched = np.zeros((T, D), bool)
    det_ignore = np.zeros((T, D), bool)
    for t, threshold in enumerate(iou_thresholds):
        gt_taken = np.zeros(G, bool)
        for d in range(D):
            best_iou = min(threshold, 1 - 1e-10)
            m = -1
            for g in range(G):
                if gt_taken[g]:
                    continue
                if m > -1 and gt_ignore[m] == 0 and gt_ignore[g] == 1:
                    break  # gts are sorted with ignored ones last
                if ious[d, g] < best_iou:
                    continue
                best_iou, m = ious[d, g], g
            if m == -1:
                continue
            det_ignore[t, d] = gt_ignore[m]
            det_matched[t, d] = True
            gt_taken[m] = True
    det_area = np.array([d["bbox"][2] * d["bbox"][3] for d in dets], float)
    outside = (det_area < area_range[0]) | (det_area > area_range[1])
    det_ignore |= ~det_matched & outside[None, :]
    return {"scores": np.array([d["score"] for d in dets], float), "matched": det_matched,
            "ignore": det_ignore, "gt_ignore": gt_ignore}


def evaluate_coco(ground_truths, detections, image_ids=None, category_ids=None, max_dets=100,
                  iou_thresholds=COCO_IOU_THRESHOLDS, recall_thresholds=COCO_RECALL_THRESHOLDS):
    """COCO-style bbox AP, as pycocotools' COCOeval (crowd-free annotations).

    Args:
        ground_truths: dicts {"image_id", "category_id", "bbox": [x, y, w, h], "area" (optional,
            default w * h)}; "iscrowd" must be absent or 0.
        detections: dicts {"image_id", "category_id", "bbox": [x, y, w, h], "score"}.
        image_ids: images evaluated (default: all that appear); detections elsewhere are ignored.
        category_ids: categories (default: those of the ground truths).
        max_dets: detections kept per image and category (highest scores).

    Returns:
        dict: "AP" (IoU .50:.95), "AP50", "AP75", "AP_small", "AP_medium", "AP_large" (-1 where
        no ground truth falls in the range, as pycocotools), "AP_per_class" {category: AP},
        "mAP" (= "AP": COCO's AP is already averaged over classes) and "precision", the
        (T, R, K, A) array of interpolated precisions (-1 where undefined).
    """
    if any(g.get("iscrowd", 0) for g in ground_truths):
        raise ValueError("Crowd annotations (iscrowd=1) are not supported.")
    if image_ids is None:
        image_ids = sorted({g["image_id"] for g in ground_truths} | {d["image_id"] for d in detections})
    if category_ids is None:
        category_ids = sorted({g["category_id"] for g in ground_truths})
    gts = _group(ground_truths, ("image_id", "category_id"))
    dets = _group(detections, ("image_id", "category_id"))
    areas = list(COCO_AREA_RANGES.values())
    T, R, K, A = len(iou_thresholds), len(recall_thresholds), len(category_ids), len(areas)
    precision = -np.ones((T, R, K, A))
    for k, cat in enumerate(category_ids):
        for a, area_range in enumerate(areas):
            evals = [_coco_image(gts.get((img, cat), []), dets.get((img, cat), []), area_range, max_dets,
                                 iou_thresholds) for img in image_ids]
            evals = [e for e in evals if e is not None]
            if not evals:
                continue
            scores = np.concatenate([e["scores"] for e in evals])
            order = np.argsort(-scores, kind="mergesort")
            matched = np.concatenate([e["matched"] for e in evals], axis=1)[:, order]
            ignore = np.concatenate([e["ignore"] for e in evals], axis=1)[:, order]
            num_gt = np.count_nonzero(np.concatenate([e["gt_ignore"] for e in evals]) == 0)
            if num_gt == 0:
                continue
            tp_sum = np.cumsum(matched & ~ignore, axis=1).astype(float)
            fp_sum = np.cumsum(~matched & ~ignore, axis=1).astype(float)
            for t in range(T):
                tp, fp = tp_sum[t], fp_sum[t]
                recall = tp / num_gt
                prec = tp / (fp + tp + np.spacing(1))
                prec = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else prec
                inds = np.searchsorted(recall, recall_thresholds, side="left")
                q = np.zeros(R)
                valid = inds < len(prec)
                q[valid] = prec[inds[valid]]
                precision[t, :, k, a] = q

    def summarize(p):
        p = p[p > -1]
        return float(np.mean(p)) if p.size else -1.0

    t50 = np.where(np.isclose(iou_thresholds, 0.5))[0]
    t75 = np.where(np.isclose(iou_thresholds, 0.75))[0]
    result = {
        "AP": summarize(precision[:, :, :, 0]),
        "AP50": summarize(precision[t50, :, :, 0]),
        "AP75": summarize(precision[t75, :, :, 0]),
        "AP_small": summarize(precision[:, :, :, 1]),
        "AP_medium": summarize(precision[:, :, :, 2]),
        "AP_large": summarize(precision[:, :, :, 3]),
        "AP_per_class": {cat: summarize(precision[:, :, k, 0]) for k, cat in enumerate(category_ids)},
        "precision": precision,
    }
    result["mAP"] = result["AP"]
    return result
