"""data/resize.py: labels by the nearest pixel centre, images by area when they shrink."""

import numpy as np

from sceneseg.data.resize import resize_pair


def test_a_label_keeps_its_classes_and_samples_pixel_centres():
    # Halving six columns 0..5 keeps one of each pair; pixel centres pick 1, 3, 5 (floor sampling,
    # cv2.INTER_NEAREST, would pick 0, 2, 4 and shift every edge by a pixel against the image).
    label = np.tile(np.arange(6, dtype=np.uint8), (4, 1))
    image = np.zeros((4, 6, 3), np.uint8)
    _, small = resize_pair(image, label, 2, 3)
    assert small.tolist() == [[1, 3, 5], [1, 3, 5]]
    _, large = resize_pair(image, label, 8, 12)
    assert set(np.unique(large)) == set(range(6))  # never a blend of two classes
    assert large[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_a_shrinking_image_is_averaged_over_its_area():
    # One bright column in four: bilinear sampling at a quarter of the width lands between the dark
    # columns and loses it; the area average keeps a quarter of its brightness.
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, ::4] = 255
    label = np.zeros((8, 16), np.uint8)
    small, _ = resize_pair(image, label, 2, 4)
    assert np.all(np.abs(small.astype(int) - 64) <= 1)


def test_a_pair_of_the_right_size_is_returned_as_it_is():
    image, label = np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint8)
    same_image, same_label = resize_pair(image, label, 4, 6)
    assert same_image is image and same_label is label
