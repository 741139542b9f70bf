"""What the charts of the reports share (图表): a CJK font for matplotlib, so that axes and legends are in Chinese.

The evaluation report (:mod:`training.report`) and the evidence report (:mod:`serving.evidence_export.report`)
draw with it. Debian's ``fonts-noto-cjk`` (or ``fonts-wqy-zenhei``) provides one; without any, callers fall
back to English labels rather than print boxes.
"""

from __future__ import annotations

import functools
import glob
import os

__all__ = ["cjk_font"]

_CJK_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
              "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
              "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")


@functools.cache
def cjk_font() -> str | None:
    """The family name of an installed CJK font, registered with matplotlib; None when there is none."""
    from matplotlib import font_manager

    candidates = list(_CJK_FONTS) + sorted(glob.glob("/usr/share/fonts/**/*CJK*.tt[cf]", recursive=True))
    for path in candidates:
        if os.path.isfile(path):
            try:
                font_manager.fontManager.addfont(path)
                return font_manager.FontProperties(fname=path).get_name()
            except (RuntimeError, OSError, ValueError):
                continue
    return None
