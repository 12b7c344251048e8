"""The rules that tell an ACTIVATE_VERSION that completes a version from one that announces
it, and a stream whose tap died before closing its version (load/versions.py)."""

from target_warehouse_raw.load.versions import StreamVersions


def test_sdk_style_announcement_before_records_is_not_a_completion():
    versions = StreamVersions()
    assert versions.activate(7) is False  # announced: the table must not be emptied yet
    versions.record(7)
    versions.record(7)
    assert versions.unfinished() is None  # announced versions need no closing message


def test_closing_activate_version_completes_the_version():
    versions = StreamVersions()
    versions.record(7)
    assert versions.activate(7) is True
    assert versions.unfinished() is None


def test_records_without_their_closing_message_are_unfinished():
    versions = StreamVersions()
    versions.record(7)
    versions.activate(7)
    versions.record(8)  # the next full extract started and the input ended
    assert versions.unfinished() == 8


def test_a_second_activate_version_for_a_version_without_records_completes_it():
    versions = StreamVersions()
    assert versions.activate(3) is False
    assert versions.activate(3) is True  # an empty extract that the tap closed
