"""The app's pure modules in the real browser: the Code 128 encoder (console/static/app/
barcode.js) against encodings computed here from the Code 128 table, Home's pending points
drawn from a given wallet, and when the access token is renewed."""

from __future__ import annotations

from typing import Any

# ISO/IEC 15417: bar and space widths of symbol values 0..106 (106: stop with its last bar).
TABLE = """
212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212 112232 122132 122231 113222
123122 123221 223211 221132 221231 213212 223112 312131 311222 321122 321221 312212 322112 322211 212123 212321
232121 111323 131123 131321 112313 132113 132311 211313 231113 231311 112133 112331 132131 113123 113321 133121
313121 211331 231131 213113 213311 213131 311123 311321 331121 312113 312311 332111 314111 221411 431111 111224
111422 121124 121421 141122 141221 112214 112412 122114 122411 142112 142211 241211 221114 413111 241112 134111
111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 214121 412121 111143 111341 131141 114113
114311 411113 411311 113141 114131 311141 411131 211412 211214 211232 2331112
""".split()
CODE_C, CODE_B, START_B, START_C, STOP = 99, 100, 104, 105, 106


def digits_at(text: str, i: int) -> int:
    end = i
    while end < len(text) and text[end].isdigit():
        end += 1
    return end - i


def symbols(text: str) -> list[int]:
    """Code sets as barcode.js chooses them: C for a leading run of 4+ digits (or digits
    alone), B otherwise; C again before 6+ digits (4+ at the end), the odd digit left in B."""
    lead = digits_at(text, 0)
    code_set = "C" if lead >= 4 or (lead >= 2 and lead == len(text)) else "B"
    values = [START_C if code_set == "C" else START_B]
    i = 0
    while i < len(text):
        run = digits_at(text, i)
        if code_set == "C":
            if run >= 2:
                values.append(int(text[i:i + 2]))
                i += 2
                continue
            values.append(CODE_B)
            code_set = "B"
        if run >= 6 or (run >= 4 and i + run == len(text)):
            if run % 2:
                values.append(ord(text[i]) - 32)
                i += 1
            values.append(CODE_C)
            code_set = "C"
            continue
        values.append(ord(text[i]) - 32)
        i += 1
    checksum = (values[0] + sum(v * k for k, v in enumerate(values) if k)) % 103
    return values + [checksum, STOP]


def modules(text: str) -> str:
    return "".join(("1" if k % 2 == 0 else "0") * int(w) for v in symbols(text) for k, w in enumerate(TABLE[v]))


SAMPLES = ["PJJ123C", "9780201379624", "6006123456781234", "GIFT-7777-AB", "HD-55-PARTNER", "AB123456",
           "X1234567Y", "12", "7", "a b~{}", "1234AB5678901"]


async def test_the_code_128_encoder_matches_the_table(page: Any) -> None:
    assert len(TABLE) == 107 and all(sum(map(int, p)) == 11 for p in TABLE[:106]) and sum(map(int, TABLE[106])) == 13
    # A published example (Wikipedia's Code 128 article): start B, data, checksum 55, stop.
    assert symbols("PJJ123C") == [104, 48, 42, 42, 17, 18, 19, 35, 55, 106]
    # A 13-digit number: six pairs in C, the last digit in B.
    assert symbols("9780201379624")[:8] == [105, 97, 80, 20, 13, 79, 62, 100]
    await page.goto("/app/static/offline.html")
    got = await page.evaluate("""async (samples) => {
      const barcode = await import('/app/static/barcode.js');
      const drawn = barcode.svg('9780201379624', 'Barcode of the card');
      return {symbols: samples.map((s) => barcode.symbols(s)), modules: samples.map((s) => barcode.modules(s)),
              refused: [barcode.symbols('caf\\u00e9'), barcode.symbols('tab\\there'), barcode.symbols('')],
              svg: {role: drawn.getAttribute('role'), name: drawn.getAttribute('aria-label'),
                    title: drawn.querySelector('title').textContent, bars: drawn.querySelectorAll('rect').length - 1,
                    viewBox: drawn.getAttribute('viewBox')}};
    }""", SAMPLES)
    assert got["symbols"] == [symbols(s) for s in SAMPLES]
    assert got["modules"] == [modules(s) for s in SAMPLES]
    assert got["refused"] == [None, None, None]
    expected = modules("9780201379624")
    assert got["svg"]["role"] == "img" and got["svg"]["name"] == got["svg"]["title"] == "Barcode of the card"
    # One rect per bar (runs of black modules), ten quiet modules each side.
    assert got["svg"]["bars"] == len([run for run in expected.split("0") if run])
    assert got["svg"]["viewBox"] == f"0 0 {len(expected) + 20} 50"


async def test_home_shows_pending_points_only_when_there_are_some(page: Any) -> None:
    await page.goto("/app/static/offline.html")
    got = await page.evaluate("""async () => {
      const home = await import('/app/static/home.js');
      const text = (wallet) => { const el = home.pending(wallet, 'stars'); return el ? el.textContent : null; };
      const lots = [{points: 300, releases_at: '2026-12-24T15:00:00Z', reason: 'Claim INV-7'},
                    {points: 200, releases_at: null, reason: 'Sale of the month'}];
      return {some: text({available: 10, pending: 500, pending_lots: lots}),
              heading: home.pending({pending: 500, pending_lots: lots}).querySelector('h2').textContent,
              items: home.pending({pending: 500, pending_lots: lots}).querySelectorAll('li').length,
              christmas: new Date('2026-12-24T15:00:00Z').toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'short'}),
              none: text({available: 10, pending: 0, pending_lots: []}),
              absent: text({available: 10, held: 0})};
    }""")
    assert got["heading"] == "Pending" and got["items"] == 2
    assert "500 stars on their way" in got["some"]
    assert f"300 stars · Claim INV-7 · released {got['christmas']}" in got["some"]
    assert "200 stars · Sale of the month · released once approved" in got["some"]
    assert got["none"] is None and got["absent"] is None


async def test_the_access_token_is_renewed_before_it_expires(page: Any) -> None:
    await page.goto("/app/static/offline.html")
    delays = await page.evaluate("""async () => {
      const api = await import('/app/static/api.js');
      return [900, 300, 60, 30].map((s) => api.renewalDelay(s));
    }""")
    # A minute early for the default 15 minutes; 20% early for short lives, at least 5 s.
    assert delays == [840_000, 240_000, 48_000, 24_000]
