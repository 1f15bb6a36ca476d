import ProxCore

/// The traffic-split decision: which of a route's pools a request goes to. Pure (no sockets, no
/// state): one 64-bit draw in, one entry of the compiled `SplitTable` out. The engine draws from
/// the event loop's generator (`ThreadRandom`); dry-run may fix the draw (`--random`).
public enum TrafficSplit {
    /// The position of `draw` (read as the fraction `draw / 2^64`) in `0..<total`: the high
    /// word of the 128-bit product, so every position gets its share of draws (within 2^-64).
    @inlinable
    public static func position(_ draw: UInt64, total: UInt64) -> UInt64 {
        draw.multipliedFullWidth(by: total).high
    }

    /// The index of the table entry `draw` falls in. No allocation; a linear scan of the
    /// cumulative weights (splits have a handful of entries).
    @inlinable
    public static func choose(_ table: SplitTable, draw: UInt64) -> Int {
        let p = position(draw, total: table.total)
        let b = table.bands
        var i = 0
        // The last band's upper bound is `total` > p: the scan stops inside the table.
        while i < b.count - 1 && p >= b[i].upper { i += 1 }
        return i
    }

    /// The draw as a decimal fraction in [0, 1), for traces.
    public static func fraction(_ draw: UInt64) -> Double {
        Double(draw >> 11) / Double(UInt64(1) << 53)
    }

    /// Why `draw` chose entry `i`, in words (traces only).
    public static func explain(_ table: SplitTable, draw: UInt64, chosen i: Int) -> String {
        let p = position(draw, total: table.total)
        let b = table.band(i)
        let f = fraction(draw)
        return "draw \(formatFraction(f)) is position \(p) of \(table.total), in \(table.names[i])'s band \(b.lower)-\(b.upper)"
    }

    /// The table in words: `stable 90, canary 10 (of 100)`.
    public static func describe(_ table: SplitTable) -> String {
        table.names.indices.map { "\(table.names[$0]) \(table.weights[$0])" }.joined(separator: ", ") + " (of \(table.total))"
    }

    /// A draw from text: a decimal fraction in [0, 1) (`0.42`), or an integer taken as the 64-bit
    /// draw itself (`0` .. `18446744073709551615`). nil when it is neither.
    public static func parseDraw(_ text: String) -> UInt64? {
        if text.hasPrefix("0.") || text.hasPrefix(".") {
            // Exact decimal arithmetic, rounded up: `0.95` is at least 95% of the range, so it
            // lands at position 95 of 100, not 94 as a binary 0.95 (0.9499999...) would.
            let digits = text.drop { $0 != "." }.dropFirst().prefix(19)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let num = UInt64(digits) else { return nil }
            var den: UInt64 = 1
            for _ in 0..<digits.count { den *= 10 }
            let (q, r) = den.dividingFullWidth((high: num, low: 0))
            return r > 0 && q < UInt64.max ? q + 1 : q
        }
        return UInt64(text)
    }

    static func formatFraction(_ f: Double) -> String {
        // Four decimals, without Foundation: 0.4200.
        let n = min(9_999, Int((f * 10_000).rounded()))
        let digits = String(n)
        return "0." + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
