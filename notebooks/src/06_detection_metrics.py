# %% [markdown]
# # Detection metrics on a worked example
#
# The notes' definitions: a detection is a true positive when its IoU with a ground-truth
# box of the same class is above the threshold and that box is not taken yet (each ground
# truth counts once, a second detection on it is a false positive). Precision = TP / (TP + FP),
# recall = TP / (TP + FN), AP = area under the precision-recall curve, mAP = mean AP over
# classes. We compute them by hand on three images, then with `training.detection`, and
# check the COCO numbers against pycocotools.

# %%
import contextlib
import io
import os
import tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ start-up log lines stay out of the outputs
import absl.logging
import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np

absl.logging.set_verbosity(absl.logging.ERROR)
from training import detection

workdir = tempfile.mkdtemp(prefix="kerasnets-nb06-")

# %% [markdown]
# ## IoU
# Intersection over union of two boxes, in corner (`xyxy`) or COCO (`xywh`) format.

# %%
a, b = [10, 10, 50, 50], [30, 30, 70, 70]
by_hand = (20 * 20) / (40 * 40 + 40 * 40 - 20 * 20)
print("IoU by hand %.4f, box_iou %.4f" % (by_hand, detection.box_iou([a], [b])[0, 0]))
print("same boxes as xywh: %.4f" % detection.box_iou([[10, 10, 40, 40]], [[30, 30, 40, 40]], box_format="xywh")[0, 0])

# %% [markdown]
# ## A small detection set
# Two classes (1 = cat, 2 = dog) on three images; boxes are `[x, y, w, h]`. Image 1 has a
# duplicate detection on its cat and image 3 a confident false alarm.

# %%
ground_truths = [
    {"image_id": 1, "category_id": 1, "bbox": [20, 30, 60, 50]},
    {"image_id": 1, "category_id": 2, "bbox": [120, 40, 50, 70]},
    {"image_id": 2, "category_id": 1, "bbox": [40, 40, 80, 80]},
    {"image_id": 3, "category_id": 2, "bbox": [10, 10, 40, 40]},
    {"image_id": 3, "category_id": 2, "bbox": [100, 90, 60, 60]},
]
detections = [
    {"image_id": 1, "category_id": 1, "bbox": [22, 28, 58, 52], "score": 0.95},
    {"image_id": 1, "category_id": 1, "bbox": [25, 35, 55, 45], "score": 0.60},  # duplicate: FP
    {"image_id": 1, "category_id": 2, "bbox": [118, 45, 55, 62], "score": 0.85},
    {"image_id": 2, "category_id": 1, "bbox": [60, 60, 80, 80], "score": 0.70},  # IoU 0.39: FP
    {"image_id": 3, "category_id": 2, "bbox": [12, 8, 38, 44], "score": 0.90},
    {"image_id": 3, "category_id": 2, "bbox": [170, 10, 30, 30], "score": 0.80},  # nothing there: FP
]
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, image_id in zip(axes, (1, 2, 3)):
    ax.set_xlim(0, 220), ax.set_ylim(170, 0), ax.set_title(f"image {image_id}")
    for g in ground_truths:
        if g["image_id"] == image_id:
            ax.add_patch(patches.Rectangle(g["bbox"][:2], *g["bbox"][2:], fill=False, lw=2, color="green"))
    for d in detections:
        if d["image_id"] == image_id:
            ax.add_patch(patches.Rectangle(d["bbox"][:2], *d["bbox"][2:], fill=False, lw=1.5, ls="--", color="red"))
            ax.text(d["bbox"][0], d["bbox"][1] - 3, "%d: %.2f" % (d["category_id"], d["score"]), color="red")
fig.suptitle("ground truth (green) and detections (red, class: score)")
plt.show()

# %% [markdown]
# ## Precision and recall by hand, class 2 (dog)
# Ranked by score: 0.90 (TP, image 3), 0.85 (TP, image 1), 0.80 (FP). Three dogs in all.

# %%
is_tp, scores = [True, True, False], [0.90, 0.85, 0.80]
precision, recall, _ = detection.precision_recall(is_tp, scores, num_gt=3)
print("precision", np.round(precision, 3), "(by hand: 1, 1, 2/3)")
print("recall   ", np.round(recall, 3), "(by hand: 1/3, 2/3, 2/3)")
print("all-point AP %.4f (by hand: 2/3 = %.4f)" % (detection.voc_ap(recall, precision, "all"), 2 / 3))
print("11-point AP  %.4f (by hand: recall 0, 0.1, ..., 0.6 reach precision 1, 7 of 11 points = %.4f)"
      % (detection.voc_ap(recall, precision, "11point"), 7 / 11))

# %% [markdown]
# ## VOC-style AP and mAP for the whole set, and the P-R curves

# %%
for method in ("all", "11point"):
    voc = detection.evaluate_voc(ground_truths, detections, method=method, box_format="xywh")
    print(f"VOC {method:8s} AP per class {dict((k, round(v, 4)) for k, v in voc['AP'].items())}  mAP {voc['mAP']:.4f}")
curves = {f"class {k} (AP {voc['AP'][k]:.2f})": v for k, v in voc["curves"].items()}
from training.plots import plot_pr_curve

plt.imshow(plt.imread(plot_pr_curve(curves, os.path.join(workdir, "pr.png"))))
plt.axis("off")
plt.show()

# %% [markdown]
# ## COCO-style AP (IoU 0.50:0.95, 101 recall points, area ranges) against pycocotools

# %%
ours = detection.evaluate_coco(ground_truths, detections)
try:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
except ImportError:
    print("pycocotools is not installed: our numbers only")
    reference = None
else:
    gt = COCO()
    gt.dataset = {"images": [{"id": i} for i in (1, 2, 3)], "categories": [{"id": 1}, {"id": 2}],
                  "annotations": [{**g, "id": n + 1, "area": g["bbox"][2] * g["bbox"][3], "iscrowd": 0}
                                  for n, g in enumerate(ground_truths)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
    reference = dict(zip(["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"], evaluator.stats[:6]))
for key in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"):
    line = f"{key:10s} ours {ours[key]: .6f}"
    if reference is not None:
        line += f"   pycocotools {reference[key]: .6f}   |diff| {abs(ours[key] - reference[key]):.1e}"
    print(line)
if reference is not None:
    assert all(abs(ours[k] - reference[k]) <= 1e-6 for k in reference)
