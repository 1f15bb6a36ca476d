import ProxCore
import Testing

/// `isHostName` became one pass over the bytes (it runs for every route's host when a config
/// compiles); it must accept exactly what the label-by-label definition accepts.
@Suite struct HostNameTests {
    /// The definition: dot-separated labels of 1 to 63 letters, digits and '-', not starting or
    /// ending with '-', at most 253 bytes in all.
    static func reference(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        for label in s.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-" else { return false }
            guard label.utf8.allSatisfy({ b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == UInt8(ascii: "-")
            }) else { return false }
        }
        return true
    }

    @Test func examples() {
        for s in ["a", "example.com", "h0.example.com", "a-b.c", "xn--bcher-kva.example", String(repeating: "a", count: 63) + ".b"] {
            #expect(isHostName(s), "\(s)")
        }
        for s in ["", ".", "a.", ".a", "a..b", "-a", "a-", "a.-b", "a-.b", "a_b", "a b", "ü.com", "a:80",
                  String(repeating: "a", count: 64), String(repeating: "a.", count: 127) + "a"] {
            #expect(!isHostName(s), "\(s)")
        }
    }

    @Test func agreesWithTheDefinition() {
        var rng = SplitMix64(seed: 8)
        let alphabet: [String] = ["a", "Z", "0", "-", ".", "_", "ü", " "]
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 12)
            var s = ""
            for _ in 0..<n { s += alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            if rng.next() % 50 == 0 { s += String(repeating: "a", count: 60 + Int(rng.next() % 8)) }
            #expect(isHostName(s) == Self.reference(s), "\(s.debugDescription)")
            #expect(isHostName(Substring(s)) == Self.reference(s), "\(s.debugDescription)")
        }
    }
}
