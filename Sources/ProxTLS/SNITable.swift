import ProxCore

/// SNI selection: exact names first, then a wildcard covering the name's first label
/// (`*.example.com` takes `a.example.com`, not `a.b.example.com` nor `example.com`, as a
/// certificate's wildcard does), else the default certificate. Two hash lookups at most, once per
/// handshake.
public struct SNITable: Sendable {
    var exact: [String: Int] = [:]
    /// Keyed by what follows `*.`.
    var wildcard: [String: Int] = [:]
    public let defaultIndex: Int

    /// `names[i]` are certificate i's names, already unique across the listener.
    public init(names: [[String]], defaultIndex: Int) {
        self.defaultIndex = defaultIndex
        for (i, ns) in names.enumerated() {
            for n in ns {
                if n.hasPrefix("*.") { wildcard[String(n.dropFirst(2))] = i } else { exact[n] = i }
            }
        }
    }

    public func select(_ serverName: String?) -> TLSSelection {
        guard let raw = serverName, !raw.isEmpty else { return TLSSelection(index: defaultIndex, reason: .fallback) }
        let name = SNINames.normalize(raw)
        if let i = exact[name] { return TLSSelection(index: i, reason: .exact(name)) }
        if let dot = name.firstIndex(of: ".") {
            let parent = String(name[name.index(after: dot)...])
            if let i = wildcard[parent] { return TLSSelection(index: i, reason: .wildcard("*." + parent)) }
        }
        return TLSSelection(index: defaultIndex, reason: .fallback)
    }
}
