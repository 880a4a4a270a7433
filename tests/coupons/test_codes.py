from __future__ import annotations

import random

import pytest

from coupons.codes import (
    CODE_LENGTH,
    damm_digit,
    format_code,
    is_valid_code,
    new_code,
    normalise_code,
)

# Random but repeatable codes to mutate; the property holds for every code, these sample it.
SAMPLES = [new_code() for _ in range(200)]


def test_damm_check_digit_matches_the_published_example() -> None:
    # Damm's worked example: 572 takes check digit 4, and 5724 checks to 0.
    assert damm_digit("572") == 4
    assert damm_digit("5724") == 0


def test_new_codes_are_twelve_digits_that_pass_their_own_check() -> None:
    for code in SAMPLES:
        assert len(code) == CODE_LENGTH
        assert code.isascii()
        assert code.isdigit()
        assert is_valid_code(code)


def test_new_codes_do_not_repeat() -> None:
    codes = {new_code() for _ in range(20_000)}
    # 20,000 draws from 10^11: a repeat has a probability around 2e-3.
    assert len(codes) >= 19_999


def test_codes_carry_eleven_random_digits() -> None:
    # Every position but the check digit takes every value: nothing fixed to guess from.
    for position in range(CODE_LENGTH - 1):
        assert {code[position] for code in SAMPLES} == set("0123456789")


def test_every_single_digit_typo_is_refused() -> None:
    for code in SAMPLES:
        for position in range(CODE_LENGTH):
            for digit in "0123456789":
                if digit == code[position]:
                    continue
                typo = code[:position] + digit + code[position + 1 :]
                assert not is_valid_code(typo), (code, typo)


def test_every_swap_of_neighbouring_digits_is_refused() -> None:
    for code in SAMPLES:
        for position in range(CODE_LENGTH - 1):
            a, b = code[position], code[position + 1]
            if a == b:
                continue
            swapped = code[:position] + b + a + code[position + 2 :]
            assert not is_valid_code(swapped), (code, swapped)


@pytest.mark.parametrize(
    "typed",
    ["{0} {1} {2}", "{0}-{1}-{2}", " {0}{1}{2} ", "{0}\u3000{1}\u3000{2}", "{0}_{1}.{2}"],
)
def test_separators_people_type_are_ignored(typed: str) -> None:
    code = SAMPLES[0]
    text = typed.format(code[:4], code[4:8], code[8:])
    assert normalise_code(text) == code
    assert is_valid_code(text)


def test_full_width_digits_from_a_chinese_keyboard_are_accepted() -> None:
    code = SAMPLES[1]
    full_width = "".join(chr(ord(ch) - ord("0") + ord("０")) for ch in code)
    assert normalise_code(full_width) == code
    assert is_valid_code(full_width)


@pytest.mark.parametrize(
    "text", ["", "12345678901", "1234567890123", "abcdefghijkl", "١٢٣٤٥٦٧٨٩٠١٢"]
)
def test_wrong_length_or_non_ascii_digits_are_refused(text: str) -> None:
    assert not is_valid_code(text)


def test_random_strings_of_digits_pass_the_check_one_time_in_ten() -> None:
    rng = random.Random(20261128)
    trials = 20_000
    passing = sum(is_valid_code(f"{rng.randrange(10**12):012d}") for _ in range(trials))
    assert 0.08 < passing / trials < 0.12


def test_codes_are_grouped_in_fours_for_reading_aloud() -> None:
    assert format_code("482109375516") == "4821 0937 5516"
