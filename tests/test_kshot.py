from benchmarks.kshot import sheet_columns


def test_the_sheet_names_the_columns_that_ran_for_every_clip():
    """A run of K = 8 and 32 only labels its columns as such (the header once named the
    default run's columns whatever ran)."""
    ran = {"training-free K=8": {}, "K=8": {}, "K=8 fine-tuned": {}, "training-free K=32": {},
           "K=32": {}}
    sheet = {"a": {"frames": [], "lms": [], **ran},
             "b": {"frames": [], "lms": [], **{k: v for k, v in ran.items() if "fine" not in k}}}
    assert sheet_columns(sheet) == ["training-free K=8", "K=8", "training-free K=32"]
