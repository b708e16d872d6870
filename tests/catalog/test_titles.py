"""Item names in feed lines say the brand once."""

from catalog.titles import item_title


def test_a_name_that_already_starts_with_the_brand_is_not_prefixed_again() -> None:
    assert item_title("Amazon", "Amazon $25") == "Amazon $25"
    assert item_title("amazon", "Amazon.com Gift Card") == "Amazon.com Gift Card"


def test_a_plain_name_gets_its_brand_in_front() -> None:
    assert item_title("Visa", "Prepaid $50") == "Visa Prepaid $50"


def test_either_part_missing_still_reads() -> None:
    assert item_title("", "Prepaid $50") == "Prepaid $50"
    assert item_title("Visa", "") == "Visa"
