from benchmarks.kshot import sheet_columns


def test_the_sheet_names_the_columns_that_ran_for_every_clip():
    """A run of K = 8 and 32 only labels its columns as such (the header once named the
    default run's columns whatever ran)."""
    ran = {"training-free K=8": {}, "K=8": {}, "K=8 fine-tuned": {}, "training-free K=32": {},
           "K=32": {}}
    sheet = {"a": {"frames": [], "lms": [], **ran},
             "b": {"frames": [], "lms": [], **{k: v for k, v in ran.items() if "fine" not in k}}}
    assert sheet_columns(sheet) == ["training-free K=8", "K=8", "training-free K=32"]


def test_a_run_of_other_ks_still_gets_its_columns():
    """`--ks 2` ran none of SHEET_COLUMNS: the sheet had no columns and crashed (set.
    intersection of nothing) after the whole run, before its table was printed."""
    ran = {"K=2": {}, "training-free K=2": {}, "K=2 fine-tuned": {}}
    sheet = {"a": {"frames": [], "lms": [], **ran}, "b": {"frames": [], "lms": [], **ran}}
    assert sheet_columns(sheet) == ["K=2", "training-free K=2", "K=2 fine-tuned"]
    assert sheet_columns({}) == []
