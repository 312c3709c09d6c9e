"""Hand-picked text that stresses lower-casing, splitting and UTF-8 handling."""

UNICODE_STRESS = [
    "",
    " ",
    "   leading and trailing   ",
    "ÉCOLE Élève ÀÖØ Ünïcödé façade naïve",
    "İstanbul ISTANBUL ıi İİ i̇",  # Turkish dotted capital I lowers to i + U+0307
    "STRASSE Straße GROẞE ẞ ß",
    "ΟΔΥΣΣΕΥΣ Σ ΣΑΣ. ΑΣ' Σ. ΑΣ ΑΣΑ ΑΣ\u0301 Α.Σ ΑΣ.Α ΣΣ",  # Greek final sigma contexts
    "Σ",
    "ΑΣ",
    "ἈΣ ἈΣ· Ϊ Ϋ́",
    "emoji 😀😃 👍🏽 👨‍👩‍👧 🇫🇷 ❤️",
    "中文的评论 日本語のレビュー 한국어 리뷰",
    "line\rbreak\r\nwindows\nunix\ttab\x0bvt\x0cff",
    "no\u00a0break\u00a0space thin\u2009space ideographic\u3000space",
    "zero\u200dwidth\u200bjoiner\ufeffbom\u200cnon",
    "KELVIN \u212a ANGSTROM \u212b OHM \u2126",
    "ligature ﬃ ﬁ ǅ ǈ ǋ Ǳ",
    "Cherokee ᎠᎡᎢ ꭰꭱ Georgian ᲐᲑᲒ Deseret 𐐀𐐁𐐨",
    "Armenian ԱԲԳ և Cyrillic ПРИВЕТ Ѐ Glagolitic ⰀⰁ",
    "combining: e\u0301 E\u0301 A\u030a \u0345",
    "punctuation!!! (parens) [brackets] {braces} <tags> a/b\\c",
    "quotes 'single' \"double\" `back` ’curly’ «guillemets»",
    "html <br /><br />tags and&amp;entities",
    "numbers 1,000.50 3.14 -42 +7 1e10 50%",
    "dots... ellipsis… dash—em–en",
    "MiXeD CaSe WoRdS aNd ACRONYMS like NASA and U.S.A.",
    "surrogate \ud800 lone \udfff pair",
    "\x00nul\x00byte and \x7f del",
    "mathematical 𝐀𝐁𝐂 𝔸𝔹 fullwidth ＡＢＣ ａｂｃ",
    "Ⅻ ⅻ Ⓐ ⓐ ℌ",
]


def encodable(text: str) -> bool:
    """Arrow and UTF-8 bytes cannot hold lone surrogates (Python str can)."""
    return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
