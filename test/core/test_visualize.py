"""Figures for people: labelled panels, the depth colour bar and the point-cloud view."""

import dataclasses

import numpy as np
import pytest

from fg_depth_core.visualize import (
    BACKGROUND,
    LABEL_HEIGHT,
    PANEL_GAP,
    CloudView,
    _depth_at_level,
    colorize_depth,
    depth_colorbar,
    labelled,
    panel_row,
    render_point_cloud,
)


def test_labelled_panels_line_up_with_gaps_between_them():
    a = np.full((10, 20, 3), 200, np.uint8)
    b = np.full((10, 30, 3), 100, np.uint8)
    row = panel_row([labelled(a, "a"), labelled(b, "b")])
    assert row.shape == (LABEL_HEIGHT + 10, 20 + PANEL_GAP + 30, 3)
    np.testing.assert_array_equal(row[LABEL_HEIGHT:, :20], a)
    np.testing.assert_array_equal(row[LABEL_HEIGHT:, 20 + PANEL_GAP :], b)
    assert (row[:, 20 : 20 + PANEL_GAP] == BACKGROUND).all()
    # The title is drawn into the strip, which is otherwise background.
    assert (row[:LABEL_HEIGHT, :20] != BACKGROUND).any()
    with pytest.raises(ValueError, match="differ in height"):
        panel_row([a, b[:5]])


def test_the_colour_bar_runs_from_near_to_far_in_colorize_depths_colours():
    lo, hi = 2.0, 80.0
    bar = depth_colorbar(300, lo, hi)
    assert bar.shape == (2 * LABEL_HEIGHT, 300, 3)
    # The level -> depth inverse really inverts colorize_depth: the bar's ends are the range's colours.
    np.testing.assert_allclose(_depth_at_level(np.array([1.0, 0.0]), lo, hi), [lo, hi])
    # Next to the end ticks (drawn over columns 0 and -1) the colours are those of the range's ends.
    ends = colorize_depth(np.array([[lo, hi]], np.float32), lo, hi)[0].astype(int)
    np.testing.assert_allclose(bar[LABEL_HEIGHT // 2, 1], ends[0], atol=3)
    np.testing.assert_allclose(bar[LABEL_HEIGHT // 2, -2], ends[1], atol=3)
    # Near is bright, far is dark.
    assert bar[0, 1].sum() > bar[0, -2].sum()


def _view(**changes):
    view = CloudView(
        eye=(0.0, 0.0, 0.0), target=(0.0, 0.0, 10.0), width=41, height=31, hfov_deg=60.0, point_size=3
    )
    return dataclasses.replace(view, **changes)


def test_a_point_straight_ahead_lands_on_the_image_centre_and_the_nearest_point_wins():
    view = _view()
    xyz = np.array([[0.0, 0.0, 10.0], [0.0, 0.0, 5.0], [0.0, 0.0, -5.0]])
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    image = render_point_cloud(xyz, colours, view)
    drawn = np.argwhere((image != BACKGROUND).any(axis=2))
    # One 3x3 square centred on (20, 15); the nearer green point covers the red one; blue is behind the eye.
    assert drawn.min(axis=0).tolist() == [14, 19] and drawn.max(axis=0).tolist() == [16, 21]
    assert (image[14:17, 19:22] == [0, 255, 0]).all()


def test_the_view_from_above_sees_the_ground_below_the_horizon():
    # Eye 5 m above (y is down) looking at the ground 10 m ahead: a ground point at 10 m is the centre, one
    # farther away sits higher in the image.
    view = _view(eye=(0.0, -5.0, 0.0), target=(0.0, 0.0, 10.0), point_size=1)
    near = render_point_cloud(np.array([[0.0, 0.0, 10.0]]), np.array([[255, 255, 255]], np.uint8), view)
    far = render_point_cloud(np.array([[0.0, 0.0, 30.0]]), np.array([[255, 255, 255]], np.uint8), view)
    (v_near, u_near), (v_far, _) = (
        np.argwhere(img.any(axis=2) & (img != BACKGROUND).any(axis=2))[0] for img in (near, far)
    )
    assert (v_near, u_near) == (15, 20)
    assert v_far < v_near


def test_bad_views_and_shapes_are_refused():
    with pytest.raises(ValueError, match="coincide"):
        _view(target=(0.0, 0.0, 0.0)).rotation()
    with pytest.raises(ValueError, match="straight up or down"):
        _view(target=(0.0, 5.0, 0.0)).rotation()
    with pytest.raises(ValueError, match=r"expected \(N,3\) points"):
        render_point_cloud(np.zeros((4, 2)), np.zeros((4, 3), np.uint8), _view())
