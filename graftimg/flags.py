"""Every flag graftimg writes, with what it means: the glossary of docs/flags.md.

A flag is a short snake_case word in a result's ``flags`` list that says "look at this": the
result stands, but something about the input or the method deserves a second look. Members
are strings (:class:`enum.StrEnum`), so a result's JSON holds the same words as before.

A flag may carry a detail after a colon (``session_missing_on_disk:ses-02``); the part before
the colon is the member. Regenerate the glossary page with::

    python -m graftimg.flags > docs/flags.md
"""

from __future__ import annotations

import sys
from enum import StrEnum

__all__ = ["Flag", "glossary_markdown"]


class Flag(StrEnum):
    """A flag of a result; ``Flag.X.description`` says what it means and what to do."""

    description: str
    source: str

    def __new__(cls, value: str, source: str, description: str) -> Flag:
        """A member: its string ``value``, where it is raised, and what it means."""
        member = str.__new__(cls, value)
        member._value_ = value
        member.source = source
        member.description = description
        return member

    @classmethod
    def parse(cls, text: str) -> Flag:
        """The member of a flag as written, a detail after ``:`` ignored.

        Examples
        --------
        >>> Flag.parse("session_missing_on_disk:ses-02") is Flag.SESSION_MISSING_ON_DISK
        True
        >>> Flag.parse("low_snr") == "low_snr"
        True
        """
        return cls(text.partition(":")[0])

    # -- the study layout (graftimg.io.bids, graftimg info) -----------------------------------
    DATASET_DESCRIPTION_MISSING = (
        "dataset_description_missing",
        "study",
        "The study folder has no `dataset_description.json`; BIDS requires one. Add it.",
    )
    NOT_IN_PARTICIPANTS_TSV = (
        "not_in_participants_tsv",
        "study",
        "A subject folder has no row in `participants.tsv`, so its graft mode, injection date "
        "and site are unknown. Add the row.",
    )
    PARTICIPANT_WITHOUT_FOLDER = (
        "participant_without_folder",
        "study",
        "`participants.tsv` lists a subject (the detail after `:`) with no `sub-` folder.",
    )
    GRAFT_MODE_MISSING = (
        "graft_mode_missing",
        "study",
        "The subject's `graft_mode` (`iron` or `t2`) is not given; the pipeline configuration's "
        "mode is used.",
    )
    INJECTION_DATE_MISSING = (
        "injection_date_missing",
        "study",
        "No `injection_date` for the subject: days since injection cannot be computed.",
    )
    INJECTION_SITE_MISSING = (
        "injection_site_missing",
        "study / session",
        "No injection site in scanner mm: the most abnormal cord region is proposed instead "
        "(see `injection_site_automatic`).",
    )
    SESSIONS_TSV_MISSING = (
        "sessions_tsv_missing",
        "study",
        "The subject has no `sessions.tsv`: sessions are ordered by label and have no "
        "acquisition time.",
    )
    NO_SESSION_FOLDERS = (
        "no_session_folders",
        "study",
        "The subject folder holds no `ses-` folder.",
    )
    SESSION_MISSING_ON_DISK = (
        "session_missing_on_disk",
        "study",
        "`sessions.tsv` lists a session (the detail after `:`) with no folder on disk.",
    )
    ACQ_TIME_MISSING = (
        "acq_time_missing",
        "study",
        "The session has no `acq_time` in `sessions.tsv`: its days since injection are unknown.",
    )
    BEFORE_INJECTION = (
        "before_injection",
        "study",
        "The session was acquired before the injection date (a baseline, or a wrong date).",
    )
    NO_IMAGES = (
        "no_images",
        "study",
        "The session folder holds no image graftimg reads.",
    )
    SEVERAL_T2W_IMAGES_FIRST_USED = (
        "several_T2w_images_first_used",
        "session",
        "The session holds several T2w images; the first (in name order) was used.",
    )
    SEVERAL_T2STARW_IMAGES_FIRST_USED = (
        "several_T2starw_images_first_used",
        "session",
        "The session holds several T2*w images; the first (in name order) was used.",
    )
    NO_COMPANION_FOR_CORD = (
        "no_companion_for_cord",
        "session",
        "In iron mode the cord is found on a same-session T2w and carried to the T2*w; there "
        "was none, so the cord was segmented on the T2*w itself.",
    )
    # -- the injection site ---------------------------------------------------------------------
    INJECTION_SITE_AUTOMATIC = (
        "injection_site_automatic",
        "session",
        "The injection site was proposed from the image (the most abnormal cord region); "
        "check it on the QC picture or give the site.",
    )
    SITE_FROM_REGISTRATION = (
        "site_from_registration",
        "session",
        "The injection site was carried from the subject's first session by rigid registration.",
    )
    SITE_POOR_REGISTRATION = (
        "site_poor_registration",
        "session",
        "The registration that carried the injection site matched poorly (low correlation); "
        "the site may be off.",
    )
    SITE_MOVED_ONTO_CORD = (
        "site_moved_onto_cord",
        "session",
        "The injection site lay a few slices past the end of the cord and was moved to the "
        "nearest cord slice.",
    )
    SITE_OUTSIDE_CORD = (
        "site_outside_cord",
        "graft",
        "The injection site lies outside the cord and its rim: check the site's coordinates.",
    )
    # -- the cord -------------------------------------------------------------------------------
    CORD_UNCERTAIN = (
        "cord_uncertain",
        "cord",
        "The automatic cord is doubtful; the flags beside it say why. Check the cord on the QC "
        "picture, or give a cord mask.",
    )
    CSA_IMPLAUSIBLE = (
        "csa_implausible",
        "cord",
        "More than 10 % of the cord slices have a cross-sectional area outside the plausible "
        "range for the scale.",
    )
    CSA_JUMP = (
        "csa_jump",
        "cord",
        "The cross-sectional area jumps between neighbouring slices more often than a cord does.",
    )
    CENTROID_JUMP = (
        "centroid_jump",
        "cord",
        "The cord's centre jumps between neighbouring slices more than a tilted cord would.",
    )
    WEAK_BOUNDARY = (
        "weak_boundary",
        "cord",
        "The cord's edge has little contrast against CSF over most of its length.",
    )
    DISCONNECTED_PIECES = (
        "disconnected_pieces",
        "cord",
        "The cord mask falls apart into several pieces.",
    )
    SEED_OUTSIDE_MASK = (
        "seed_outside_mask",
        "cord",
        "The seed point given for the cord lies outside the cord found.",
    )
    LOW_CONFIDENCE = (
        "low_confidence",
        "cord",
        "The cord's overall confidence is below 0.5 without one specific reason.",
    )
    CORD_BENDS_AROUND_ABNORMALITY = (
        "cord_bends_around_abnormality",
        "cord",
        "The cord contour bent around abnormal tissue (a graft, a lesion) and the dent was "
        "filled from the slices above and below: the cord holds the tissue, its edge there "
        "does not come from the image.",
    )
    CORD_NARROWS_AT_SITE = (
        "cord_narrows_at_site",
        "cord",
        "At the injection site the cord's cross-section is under half of what it is along the "
        "cord around it: the contour probably went around (or shrank onto) a graft. When "
        "nothing is found there, the volume is null: check the cord, or give a cord mask.",
    )
    CORD_MASK_RESAMPLED = (
        "cord_mask_resampled",
        "cord",
        "The cord mask given was on another grid and was resampled onto the image.",
    )
    POOR_REGISTRATION = (
        "poor_registration",
        "cord / registration / longitudinal",
        "A rigid registration ended with a correlation below its threshold: `graftimg "
        "register`; the cord: registering the companion image (whose cord was carried over) "
        "matched poorly, so the carry in scanner coordinates was kept; survival: the "
        "registration to the baseline correlates below 0.8, or the pipeline flagged it poor.",
    )
    # -- the normal-appearing cord reference ----------------------------------------------------
    REFERENCE_TOO_SMALL = (
        "reference_too_small",
        "graft",
        "The first-choice reference region (normal cord in bands beyond the injection window) "
        "held too few voxels and was widened.",
    )
    REFERENCE_ONE_SIDED = (
        "reference_one_sided",
        "graft",
        "The reference holds normal cord on one side of the injection window only.",
    )
    REFERENCE_INSIDE_WINDOW = (
        "reference_inside_window",
        "graft",
        "The reference had to include cord inside the injection window.",
    )
    REFERENCE_NO_VARIANCE = (
        "reference_no_variance",
        "graft",
        "The reference voxels are all equal (a synthetic or clipped image): thresholds in "
        "robust SDs mean nothing.",
    )
    REFERENCE_EXCLUSION_NOT_CONVERGED = (
        "reference_exclusion_not_converged",
        "graft",
        "Removing abnormal tissue from the reference did not settle within its iterations.",
    )
    REFERENCE_UNRELIABLE = (
        "reference_unreliable",
        "graft / longitudinal",
        "No trustworthy normal cord is left to compare with (`reference_unreliable_reasons` "
        "says why): the graft volume is `null`, never 0. Survival: the normal-cord reference "
        "of that session was flagged unreliable, too small or without variance "
        "(`reference_too_small`, `reference_no_variance`), or holds fewer than 200 voxels.",
    )
    CSF_REFERENCE_TOO_SMALL = (
        "csf_reference_too_small",
        "graft",
        "The CSF ring used to tell cysts from graft (t2 mode) held too few voxels and was "
        "widened.",
    )
    CSF_CONTRAST_LOW = (
        "csf_contrast_low",
        "graft",
        "T2 mode: CSF is not clearly brighter than the graft, so cysts cannot be split by "
        "intensity as planned (no split, or the cyst level was raised to the cord–CSF "
        "midpoint).",
    )
    CSF_REFERENCE_NO_VARIANCE = (
        "csf_reference_no_variance",
        "graft",
        "The CSF reference voxels are all equal.",
    )
    # -- the graft ------------------------------------------------------------------------------
    NO_GRAFT_FOUND = (
        "no_graft_found",
        "graft",
        "Nothing abnormal was found in the injection window: the volume is 0.",
    )
    COMPONENTS_FAR_FROM_SITE = (
        "components_far_from_site",
        "graft",
        "Abnormal components far from the injection site were left out of the graft.",
    )
    THRESHOLD_NEAR_NOISE_FLOOR = (
        "threshold_near_noise_floor",
        "graft",
        "Iron mode: the void threshold lies within twice the noise floor, so noise decides "
        "part of the void's edge.",
    )
    LOW_SNR = (
        "low_snr",
        "graft / longitudinal",
        "The normal cord's signal-to-noise ratio is below `min_snr` (survival: below 10, or the "
        "segmentation said so).",
    )
    POSSIBLE_SUBVOXEL_CYST = (
        "possible_subvoxel_cyst",
        "graft",
        "T2 mode: graft voxels brighter than graft tissue can be, yet not CSF-like: a cyst "
        "thinner than a voxel (or oedema) may be counted in the graft.",
    )
    GRAFT_TOUCHES_WINDOW_EDGE = (
        "graft_touches_window_edge",
        "graft",
        "The graft reaches the edge of the injection window: it may extend beyond it "
        "(widen `window_half_length_mm`).",
    )
    GRAFT_EXTENDS_BEYOND_SEARCH_REGION = (
        "graft_extends_beyond_search_region",
        "graft",
        "Iron mode: the void continues past the cord and its rim, where it is not counted.",
    )
    # -- survival over sessions (graftimg.longitudinal.flags, with their evidence) --------------
    PROTOCOL_CHANGE = (
        "protocol_change",
        "longitudinal",
        "Echo time, field strength or a voxel dimension differs by more than 10 % from the "
        "reference session (an iron void scales with echo time × field; partial volume with "
        "voxel size).",
    )
    ACUTE_WINDOW = (
        "acute_window",
        "longitudinal",
        "The session lies between the injection and the end of the acute window (oedema, "
        "haemorrhage and the injection track inflate the graft).",
    )
    SIGNAL_BEFORE_INJECTION = (
        "signal_before_injection",
        "longitudinal",
        "A session before the injection already has graft signal whose band excludes zero (a "
        "bleed or an old lesion mimics the graft).",
    )
    LABEL_PERSISTENCE = (
        "label_persistence",
        "longitudinal",
        "Iron mode with a T2w graft of the same subject: the iron void changes less than its "
        "minimum detectable change while the T2w graft shrinks by more than its own (iron from "
        "dead cells stays in macrophages).",
    )


def glossary_markdown() -> str:
    """The text of docs/flags.md: every member, grouped by where it is raised."""
    lines = [
        "# Flags",
        "",
        'A flag in a result\'s `flags` list says "look at this": the result stands, but something',
        "about the input or the method deserves a second look. A flag may carry a detail after a",
        "colon (`session_missing_on_disk:ses-02`). This page is generated from",
        "`graftimg/flags.py` (`python -m graftimg.flags > docs/flags.md`); a test keeps the two",
        "equal and checks that every flag the test suite produces is listed here.",
        "",
        "| flag | raised by | meaning |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{flag.value}` | {flag.source} | {flag.description} |" for flag in Flag]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - the docs generator
    sys.stdout.write(glossary_markdown())
