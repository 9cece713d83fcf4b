"""The HW1P2 phoneme inventory and the symbol <-> class-index maps."""

SYMBOLS: tuple[str, ...] = (
    "[SIL]", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
    "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S",
    "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH", "[SOS]", "[EOS]",
)  # fmt: skip

CLASSES: tuple[str, ...] = SYMBOLS[:40]
"""The 40 classes a frame can have; a frame's label is its symbol's index here."""

NUM_CLASSES = len(CLASSES)
SOS, EOS = "[SOS]", "[EOS]"
SILENCE = "[SIL]"
INDEX: dict[str, int] = {symbol: i for i, symbol in enumerate(CLASSES)}
