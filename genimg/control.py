"""Control maps for ControlNet: what the input image becomes before the ControlNet sees it.

``none`` passes the image as it is (an edge map, pose or depth image made elsewhere); ``canny``
draws its edges with OpenCV's Canny detector at the thresholds A1111's ControlNet extension uses
(100, 200), white edges on black, as the canny ControlNets were trained on.
"""

from __future__ import annotations

CANNY_THRESHOLDS = (100, 200)


def preprocess(image, mode: str):
    if mode == "none":
        return image
    import cv2
    import numpy as np
    from PIL import Image

    edges = cv2.Canny(np.asarray(image.convert("L")), *CANNY_THRESHOLDS)
    return Image.fromarray(edges).convert("RGB")
