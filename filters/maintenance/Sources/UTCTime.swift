import ProxCore

/// RFC 3339 timestamps <-> seconds since 1970-01-01T00:00:00Z, without Foundation's formatters:
/// parsed once at compile time, formatted only for traces and docs.
enum UTCTime {
    /// `2026-12-01T02:00:00Z`, `2026-12-01T03:00:00+01:00`, fractional seconds ignored.
    static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func num(_ from: Int, _ count: Int) -> Int64? {
            guard from + count <= b.count else { return nil }
            var v: Int64 = 0
            for c in b[from..<from + count] {
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            return v
        }
        func at(_ i: Int, _ c: Character) -> Bool { i < b.count && b[i] == c.asciiValue! }
        guard let y = num(0, 4), at(4, "-"), let mo = num(5, 2), at(7, "-"), let d = num(8, 2),
              at(10, "T") || at(10, "t"), let h = num(11, 2), at(13, ":"), let mi = num(14, 2), at(16, ":"),
              let s = num(17, 2) else { return nil }
        guard (1...12).contains(mo), d >= 1, d <= daysIn(month: mo, year: y), h <= 23, mi <= 59, s <= 60 else { return nil }
        var i = 19
        if at(i, ".") {
            i += 1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            if i == start { return nil }
        }
        var offset: Int64 = 0
        if at(i, "Z") || at(i, "z") {
            i += 1
        } else if at(i, "+") || at(i, "-") {
            let sign: Int64 = at(i, "-") ? -1 : 1
            guard let oh = num(i + 1, 2), at(i + 3, ":"), let om = num(i + 4, 2), oh <= 23, om <= 59 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        return daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + min(s, 59) - offset
    }

    /// `2026-12-01T02:00:00Z`.
    static func format(_ t: Int64) -> String {
        let days = t >= 0 ? t / 86_400 : (t - 86_399) / 86_400
        let secs = t - days * 86_400
        let (y, m, d) = civilFromDays(days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let year = String(y)
        return String(repeating: "0", count: max(0, 4 - year.count)) + year + "-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60))Z"
    }

    static func daysIn(month m: Int64, year y: Int64) -> Int64 {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
    }
}

extension ConfigType where Value == Int64 {
    /// An RFC 3339 timestamp (`2026-12-01T02:00:00Z`), as seconds since the epoch.
    static var utcTimestamp: ConfigType<Int64> {
        ConfigType<String>.string(minLength: 1).map(docName: "RFC 3339 timestamp", { s, node, d in
            guard let t = UTCTime.parse(s) else {
                d.error(node, "'\(s)' is not an RFC 3339 timestamp",
                        hint: "write a date and time with its offset: 2026-12-01T02:00:00Z or 2026-12-01T03:00:00+01:00")
                return nil
            }
            return t
        }, render: { .string(UTCTime.format($0)) }).describing(schema: { _ in
            .object([("type", .string("string")), ("format", .string("date-time")),
                     ("examples", .array([.string("2026-12-01T02:00:00Z")]))])
        })
    }
}
