"""hlsflow/parts.py in one process, fast (no TensorFlow, no command): the part grammar, board names,
device lookup, the figures' arithmetic (slices, 36 Kb blocks), `hlsflow parts`'s listing and its
search. Expected values are written out from the data sheets and the boards' user guides, not read
back from the table (tests/toolchain/test_parts_table.py checks the table against real reports)."""

import pytest

from hlsflow import parts
from hlsflow.errors import FlowError


# ------------------------------------------------------------------ the grammar

@pytest.mark.parametrize("text", ["xc7z020clg400-1", "XC7Z020CLG400-1", "xcu280-fsvh2892-2L-e",
                                  "xcvc1902-vsva2197-2MP-e-S", "x1", "x" + "a" * 63])
def test_a_part_name_is_letters_and_digits_in_hyphen_joined_groups(text):
    assert parts.check_part_name(text) == text


@pytest.mark.parametrize("text", ["", "x", "ac7z020", "xc7z020-", "-xc7z020", "xc7z020--1", "xc7z020_clg400",
                                  "xc7z020 clg400", "xc7z020\n", "xc7z020\"", "xc7z020[exec ls]", "x" + "a" * 64,
                                  "xc7z020clg400-1$x", "xc7é020"])
def test_anything_else_is_not_a_part_name_in_one_sentence(text):
    with pytest.raises(FlowError) as caught:
        parts.check_part_name(text)
    message = str(caught.value)
    assert message.startswith("Part '") and "is not a part name" in message and message.endswith("lists it.")
    assert caught.value.exit_code == 2


def test_the_sentence_shows_a_short_printable_name_as_given_and_a_long_or_odd_one_quoted_and_cut():
    with pytest.raises(FlowError, match=r"^Part 'pynq z2' is not"):
        parts.check_part_name("pynq z2")
    with pytest.raises(FlowError) as caught:
        parts.check_part_name("a\nb")
    assert str(caught.value).startswith("Part ''a\\nb'' is not")
    with pytest.raises(FlowError) as caught:
        parts.check_part_name("y" * 100)
    assert str(caught.value).startswith("Part '" + repr("y" * 80) + "' is not")
    with pytest.raises(FlowError) as caught:
        parts.check_part_name("y" * 80)  # 80 printable characters are shown as they are
    assert str(caught.value).startswith("Part '" + "y" * 80 + "' is not")
    with pytest.raises(FlowError) as caught:
        parts.check_part_name("y" * 81)
    assert str(caught.value).startswith("Part '" + repr("y" * 80) + "' is not")


def test_the_whole_sentence_of_a_name_that_is_no_part():
    with pytest.raises(FlowError) as caught:
        parts.resolve_part("pynq z2")
    assert str(caught.value) == ("Part 'pynq z2' is not a part name (letters and digits in groups joined by hyphens, like "
                                 "xc7z020clg400-1) nor a board `hlsflow parts` lists: give the part as Vivado lists it.")


def test_a_name_of_sixty_four_characters_passes_and_sixty_five_do_not():
    assert parts.resolve_part("x" + "1" * 63) == "x" + "1" * 63
    with pytest.raises(FlowError, match="is not a part name"):
        parts.resolve_part("x" + "1" * 64)


def test_a_part_name_object_is_taken_as_its_text():
    class Named:
        def __str__(self):
            return "xc7z020clg400-1"

    assert parts.check_part_name(Named()) == "xc7z020clg400-1"
    assert parts.resolve_part(Named()) == "xc7z020clg400-1"


# ------------------------------------------------------------------ boards

@pytest.mark.parametrize("name, part", [
    ("pynq-z2", "xc7z020clg400-1"), ("PYNQ-Z2", "xc7z020clg400-1"), ("pynq_z2", "xc7z020clg400-1"),
    ("pynqz2", "xc7z020clg400-1"), ("Ultra96-V2", "xczu3eg-sbva484-1-e"), ("ultra96", "xczu3eg-sbva484-1-e"),
    ("alveo-u250", "xcu250-figd2104-2L-e"), ("Alveo_U280", "xcu280-fsvh2892-2L-e"), ("u50", "xcu50-fsvh2104-2-e"),
    ("kria_kv260", "xck26-sfvc784-2LV-c"), ("kria-kr260", "xck26-sfvc784-2LV-c"), ("zybo-z7-10", "xc7z010clg400-1"),
    ("arty-a7-35", "xc7a35ticsg324-1L"), ("basys3", "xc7a35tcpg236-1"), ("vck190", "xcvc1902-vsva2197-2MP-e-S")])
def test_a_board_name_in_any_case_with_hyphens_or_underscores_names_its_part(name, part):
    assert parts.resolve_part(name) == part


def test_every_board_resolves_to_the_part_it_lists_and_the_part_to_itself():
    for board, part in parts.BOARDS.items():
        assert parts.resolve_part(board) == part
        assert parts.resolve_part(part) == part


@pytest.mark.parametrize("name", ["xboard", "xalveo", "xc7z020", "xczu9eg-ffvb1156-2-e"])
def test_a_name_that_is_no_board_is_taken_as_a_part_as_written(name):
    assert parts.resolve_part(name) == name


@pytest.mark.parametrize("name", ["pynq-z2-", "pynq--z2", "_pynq", "pynq z2", "pynq.z2", "pynq-z2\n", ""])
def test_a_board_name_outside_the_grammar_is_refused_before_any_lookup(name):
    with pytest.raises(FlowError, match="is not a part name"):
        parts.resolve_part(name)


def test_a_name_in_the_board_grammar_that_is_no_part_is_refused_after_the_lookup():
    # Underscores pass the board grammar (kria_kv260) but never the part grammar.
    with pytest.raises(FlowError, match=r"^Part 'my_board' is not a part name"):
        parts.resolve_part("my_board")
    with pytest.raises(FlowError, match=r"^Part 'pynq' is not"):
        parts.resolve_part("pynq")  # letters and digits, but not starting with x
    with pytest.raises(FlowError, match=r"^Part 'alveo' is not"):
        parts.resolve_part("alveo")  # the vendor's prefix alone names no board


# ------------------------------------------------------------------ devices and their figures

@pytest.mark.parametrize("name, device", [
    ("xc7z020clg400-1", "xc7z020"), ("xc7z020-clg484-1", "xc7z020"), ("XC7Z020CLG400-1", "xc7z020"),
    ("xc7z020", "xc7z020"), ("xc7z010clg400-1", "xc7z010"), ("xc7z100ffg900-2", "xc7z100"),
    ("xczu3eg-sbva484-1-e", "xczu3eg"), ("xczu7ev-ffvc1156-2-e", "xczu7ev"), ("xcvu13p-flga2577-2-e", "xcvu13p"),
    ("xcvu3p-ffvc1517-2-e", "xcvu3p"), ("xcvu37p-fsvh2892-2L-e", "xcvu37p"), ("xqzu9eg-ffrb1156-1-m", "xczu9eg"),
    ("xa7z020clg400-1q", "xc7z020"), ("XA7A12TCSG325-1Q", "xc7a12t"), ("xck26-sfvc784-2LV-c", "xck26"),
    ("xcu55c-fsvh2892-2L-e", "xcu55c"), ("xcku115-flvb2104-2-i", "xcku115"), ("xcku11p-ffva1156-2-e", "xcku11p")])
def test_the_device_is_the_longest_table_name_that_starts_the_part_before_its_package(name, device):
    assert parts.device_of(name) == device


@pytest.mark.parametrize("name", ["xc7z0100clg400-1", "xc7z02", "xcku19p-ffvj1760-2-e", "xcvp1202-vsva2785-2MP-e-S",
                                  "xck24-ubva530-2LV-c", "yc7z020clg400-1", "xb7z020clg400-1", "", "xc7z0201"])
def test_a_part_of_no_device_in_the_table_has_no_device(name):
    assert parts.device_of(name) is None
    assert parts.find_part(name) is None


def test_a_found_part_carries_the_name_given_and_its_device_figures():
    part = parts.find_part("xc7z020clg400-1")
    assert part.name == "xc7z020clg400-1" and part.family == "zynq"
    assert part.resources() == {"DSP": 220, "BRAM_18K": 280, "LUT": 53200, "FF": 106400, "URAM": 0}
    assert part.describe() == "220 DSP, 280 BRAM_18K, 0 URAM, 53,200 LUT, 106,400 FF"
    assert parts.DEVICES["xc7z020"].name == "xc7z020"  # the table's entry is left as it was
    assert parts.find_part(parts.BOARDS["u250"]).describe() == \
        "12,288 DSP, 5,376 BRAM_18K, 1,280 URAM, 1,728,000 LUT, 3,456,000 FF"


def test_seven_series_figures_come_from_slices_and_36kb_blocks():
    # DS180: the XC7A35T has 5,200 slices (4 LUTs, 8 flip-flops each), 90 DSP slices, 50 36 Kb blocks.
    a35 = parts.DEVICES["xc7a35t"]
    assert (a35.LUT, a35.FF, a35.DSP, a35.BRAM_18K, a35.URAM) == (20800, 41600, 90, 100, 0)
    assert a35.family == "artix7" and a35.sheet.startswith("DS180 ")
    s6 = parts.DEVICES["xc7s6"]
    assert (s6.LUT, s6.FF, s6.DSP, s6.BRAM_18K) == (3752, 7504, 10, 10)


def test_the_zynq_ultrascale_variants_share_their_size_figures():
    cg, eg, ev = (parts.DEVICES[f"xczu4{kind}"] for kind in ("cg", "eg", "ev"))
    assert cg.resources() == eg.resources() == ev.resources() == \
        {"DSP": 728, "BRAM_18K": 256, "LUT": 87840, "FF": 175680, "URAM": 48}
    assert "xczu1ev" not in parts.DEVICES and "xczu9ev" not in parts.DEVICES
    assert parts.DEVICES["xck26"].sheet == "DS987 Kria K26 SOM Data Sheet"
    assert parts.DEVICES["xczu21dr"].resources() == parts.DEVICES["xczu49dr"].resources() == \
        {"DSP": 4272, "BRAM_18K": 2160, "LUT": 425280, "FF": 850560, "URAM": 80}


@pytest.mark.parametrize("name, family", [
    ("xc7z020clg400-1", "zynq"), ("xczu9eg-ffvb1156-2-e", "zynquplus"), ("xcu280-fsvh2892-2L-e", "virtexuplusHBM"),
    ("xcvc1902-vsva2197-2MP-e-S", "versal"), ("xcvp1202-vsva2785-2MP-e-S", "versal"), ("xcve2802-vsvh1760", "versal"),
    ("XCVH1582-VSVA3697-2MP-E-S", "versal"), ("xqvc1902-vsva2197", "versal"), ("xavm1102", "versal"),
    ("xcvu23p-vsva1365-2-e", None), ("xcvc190", None), ("xcku19p-ffvj1760-2-e", None), ("xcvx1902", None),
    ("yxcvc1902", None)])
def test_the_family_comes_from_the_table_else_from_a_versal_name(name, family):
    assert parts.family_of(name) == family


def test_the_suggested_parts_are_the_boards_and_the_wild_reports_parts_that_the_table_knows():
    assert "xc7z020clg400-1" in parts.PARTS and "xcvu13p-flga2577-2-e" in parts.PARTS
    assert parts.PARTS["xcvu13p-flga2577-2-e"].DSP == 12288
    assert "xck24-ubva530-2LV-c" not in parts.PARTS  # a board's part whose device is left out
    assert "xcve2802-vsvh1760-2MP-e-S" not in parts.PARTS
    assert all(name == part.name and parts.device_of(name) for name, part in parts.PARTS.items())
    expected = {p for p in parts.BOARDS.values() if parts.device_of(p)} | {
        "xcvu13p-flga2577-2-e", "xczu5ev-sfvc784-2LV-e", "xcku115-flvb2104-2-i", "xcku15p-ffve1517-1-i",
        "xcvu11p-flga2577-1-e", "xc7a200t-fbg676-2"}
    assert set(parts.PARTS) == expected


# ------------------------------------------------------------------ `hlsflow parts`

def test_the_whole_listing_has_every_board_and_device():
    boards, devices = parts.listing()
    assert [b[0] for b in boards] == list(parts.BOARDS)
    assert [d[0] for d in devices] == list(parts.DEVICES)
    assert ("pynq-z2", "xc7z020clg400-1", "xc7z020") in boards
    assert ("kd240", "xck24-ubva530-2LV-c", "not in the table") in boards
    assert ("xcvu13p", "virtexuplus", "12,288", "5,376", "1,280", "1,728,000", "3,456,000", "DS890") in devices
    assert parts.listing("") == (boards, devices)


@pytest.mark.parametrize("search, boards, devices", [
    ("ULTRA96", ["ultra96", "ultra96v2"], []),
    ("xczu3eg", ["ultra96", "ultra96v2"], ["xczu3eg"]),  # a part or device name
    ("sbva484", ["ultra96", "ultra96v2"], []),  # any piece of the part
    ("artix7", ["arty-a7-35", "arty-a7-100", "basys3", "nexys-a7-100t"],  # a family: its boards and devices
     ["xc7a12t", "xc7a15t", "xc7a25t", "xc7a35t", "xc7a50t", "xc7a75t", "xc7a100t", "xc7a200t"]),
    ("DS987", [], ["xck26"]),  # a data sheet
    ("xck24", ["kd240"], []),  # a board whose part is not in the table
    ("XXXX", [], []),
])
def test_a_search_finds_boards_by_board_part_or_family_and_devices_by_name_family_or_sheet(search, boards, devices):
    found_boards, found_devices = parts.listing(search)
    assert [b[0] for b in found_boards] == boards
    assert [d[0] for d in found_devices] == devices


def test_show_prints_both_tables_and_the_note_on_other_parts(capsys):
    parts.show("pynq")
    out = capsys.readouterr().out
    assert "| pynq-z2 | xc7z020clg400-1 | xc7z020 |" in out and "| pynq-z1 " in out
    assert "| family" not in out  # no device matches "pynq": that table is left out
    assert out.splitlines()[0].split() == ["|", "board", "|", "part", "|", "device", "|"]
    assert out.splitlines()[-1] == ("Any other Xilinx part runs too (give --part as Vivado lists it); its fit is judged "
                                    "after synthesis, against the figures Vivado writes into the report.")
    parts.show("xcau7p")
    out = capsys.readouterr().out
    assert "| xcau7p | artixuplus | 216" in out and "| board" not in out
    assert [cell.strip() for cell in out.splitlines()[0].strip("|").split("|")] == [
        "device", "family", "DSP", "BRAM_18K", "URAM", "LUT", "FF", "data sheet"]


def test_show_with_a_search_that_matches_nothing_is_one_sentence(capsys):
    with pytest.raises(FlowError) as caught:
        parts.show("nosuchboard")
    assert str(caught.value) == ("No board or device matches 'nosuchboard': run `hlsflow parts` for the whole list; "
                                 "any Xilinx part runs, its fit judged against Vivado's own figures after synthesis.")
    assert caught.value.exit_code == 2
    assert capsys.readouterr().out == ""
