import NIOCore

/// Where one header line lies inside the head's bytes. Offsets are relative to the start of
/// `HeaderFields.bytes`' readable region.
public struct HeaderSlot: Sendable {
    public var nameStart: UInt32
    public var nameLength: UInt32
    public var valueStart: UInt32
    public var valueLength: UInt32
    /// Set by `remove`/`set`: the line is not written on.
    public var removed: Bool

    /// Inlinable: the parsers make one per field line, in another module (a call each was about
    /// 14 instructions, 12 a proxied request). Offsets are within a head, which the parsers
    /// bound far below 4 GiB, so they are narrowed without a check.
    @inlinable
    public init(nameStart: Int, nameLength: Int, valueStart: Int, valueLength: Int) {
        self.nameStart = UInt32(truncatingIfNeeded: nameStart)
        self.nameLength = UInt32(truncatingIfNeeded: nameLength)
        self.valueStart = UInt32(truncatingIfNeeded: valueStart)
        self.valueLength = UInt32(truncatingIfNeeded: valueLength)
        self.removed = false
    }
}

/// Header lines as a view over the bytes received, plus the edits stages made.
///
/// Lookups compare bytes against a prepared `HeaderName`; a value becomes a `String` only when
/// asked for. Removals mark received lines; added lines are kept already serialized
/// (`Name: value\r\n`, one after another in `addedBytes`), so writing them is one copy and a
/// request carries no per-line objects to retain and release (measured with callgrind: the
/// `(HeaderName, String)` pairs this replaced cost ~3k instructions per proxied request).
public struct HeaderFields: Sendable {
    /// The received head (or an empty buffer for a head built locally).
    public var bytes: ByteBuffer
    public var slots: [HeaderSlot]
    /// Lines added by stages, in order, each `Name: value\r\n`: names are tokens (others are
    /// dropped when added) and CR, LF and NUL in values were made SP, so a line can never split
    /// the head. Written after the received lines that remain.
    ///
    /// The lines are the first `_addedCount` bytes of `_addedStorage`; the bytes after them are
    /// room, already initialized, so a line is written straight into its place. Appending to an
    /// array took each line built aside and copied in through the generic path (about 130
    /// instructions a line more, seven lines a proxied request), and emptying one for the next
    /// head cost about 50 more.
    @usableFromInline var _addedStorage: [UInt8]
    @usableFromInline var _addedCount: Int
    /// The `knownBit`s of the names in `addedBytes`, plus `otherNameBit` when some name there
    /// has none: asking whether a well-known name was added costs a bit test instead of a walk,
    /// and asking about another name walks the lines only when such a name was added.
    @usableFromInline var _addedKnown: UInt32
    /// The added lines (stored apart, settable only here, so that every line goes through `add`
    /// and its checks; stored `@usableFromInline` so the initializer can be inlined).
    /// A copy: for tests and tools. The writers lend them (`withAddedBytes`).
    public var addedBytes: [UInt8] { Array(_addedStorage[0..<_addedCount]) }
    /// How many bytes the added lines take (0: none was added).
    @inlinable public var addedByteCount: Int { _addedCount }
    /// Lends the added lines' bytes.
    @inlinable
    public func withAddedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try _addedStorage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<_addedCount])) }
    }
    @inlinable public var addedKnown: UInt32 { _addedKnown }
    /// In `addedKnown`: some added line's name has no `knownBit`.
    public static let otherNameBit: UInt32 = 1 << 31

    /// `addedStorage`: an array whose bytes the added lines may overwrite (recycled from an
    /// earlier head; see `takeStorage`).
    ///
    /// Inlinable: the parsers, in another module, make one a head (46 instructions a request
    /// less, callgrind).
    @inlinable
    public init(bytes: ByteBuffer, slots: [HeaderSlot], addedStorage: [UInt8] = []) {
        // Every field set once, nothing mutated after: a value changed after it was whole was
        // built aside and then copied out whole (six retains and releases a request).
        self.bytes = bytes
        self.slots = slots
        self._addedStorage = addedStorage
        self._addedCount = 0
        self._addedKnown = 0
    }

    /// Moves the slot and added-line arrays out, leaving these fields without lines, so their
    /// memory can serve the next head on the connection. The added-line array comes out as it
    /// is (its old bytes are overwritten by the next head's lines).
    public mutating func takeStorage() -> (slots: [HeaderSlot], added: [UInt8]) {
        var s: [HeaderSlot] = []
        swap(&s, &slots)
        var a: [UInt8] = []
        swap(&a, &_addedStorage)
        _addedCount = 0
        _addedKnown = 0
        return (s, a)
    }

    public init() {
        self.bytes = ByteBuffer()
        self.slots = []
        self._addedStorage = []
        self._addedCount = 0
        self._addedKnown = 0
    }

    // MARK: reading

    /// Calls `body` with the name and value bytes of every received line that was not removed.
    @inlinable
    public func forEachReceived(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeReadableBytes { all in
            for s in slots where !s.removed {
                let n = UnsafeRawBufferPointer(rebasing: all[Int(s.nameStart)..<Int(s.nameStart + s.nameLength)])
                let v = UnsafeRawBufferPointer(rebasing: all[Int(s.valueStart)..<Int(s.valueStart + s.valueLength)])
                body(n, v)
            }
        }
    }

    /// Calls `body` with the name, value and whole line (CRLF included) of every added line, in
    /// order; `body` returns false to stop.
    @inlinable
    public func forEachAdded(_ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer,
                                      _ line: UnsafeRawBufferPointer) -> Bool) {
        guard _addedCount > 0 else { return }
        withAddedBytes { all in
            var i = 0
            let n = all.count
            while i < n {
                var colon = i
                while all[colon] != 0x3A { colon += 1 }
                var cr = colon + 2
                while all[cr] != 0x0D { cr += 1 }
                let more = body(UnsafeRawBufferPointer(rebasing: all[i..<colon]),
                                UnsafeRawBufferPointer(rebasing: all[(colon + 2)..<cr]),
                                UnsafeRawBufferPointer(rebasing: all[i..<(cr + 2)]))
                if !more { return }
                i = cr + 2
            }
        }
    }

    /// Index of the first received, not removed line named `name`.
    @inlinable
    public func firstSlot(_ name: HeaderName) -> Int? {
        // The wanted length read once, the slots without bounds checks: most lines are skipped
        // on their length alone.
        let want = UInt32(truncatingIfNeeded: name.lowercased.count)
        return slots.withUnsafeBufferPointer { ss in
            var i = 0
            while i < ss.count {
                let s = ss[i]
                if s.nameLength == want && !s.removed {
                    let found = bytes.withUnsafeReadableBytes { all in
                        name.matches(UnsafeRawBufferPointer(rebasing: all[Int(s.nameStart)..<Int(s.nameStart + s.nameLength)]))
                    }
                    if found { return i }
                }
                i += 1
            }
            return nil
        }
    }

    /// Whether some received, not removed line's name is `length` bytes long: a filter before a
    /// lookup by name that most heads fail.
    @inlinable
    public func hasLine(nameLength length: UInt32) -> Bool {
        slots.withUnsafeBufferPointer { ss in
            for s in ss where s.nameLength == length && !s.removed { return true }
            return false
        }
    }

    /// The value of a received line as a `String`.
    public func value(ofSlot i: Int) -> String {
        let s = slots[i]
        return bytes.getString(at: bytes.readerIndex + Int(s.valueStart), length: Int(s.valueLength)) ?? ""
    }

    /// Calls `body` with the bytes of the value of slot `i`.
    @inlinable
    public func withValueBytes<R>(ofSlot i: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let s = slots[i]
        return bytes.withUnsafeReadableBytes { all in
            body(UnsafeRawBufferPointer(rebasing: all[Int(s.valueStart)..<Int(s.valueStart + s.valueLength)]))
        }
    }

    /// Calls `body` with the value bytes of the first added line named `name`; false if none.
    @inlinable
    public func withFirstAddedValue(_ name: HeaderName, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        var found = false
        forEachAdded { n, v, _ in
            if name.matches(n) { body(v); found = true; return false }
            return true
        }
        return found
    }

    /// The first value for `name`, seeing stage edits: an added line wins over a received one
    /// only when the received ones were removed (as `set` does).
    public func first(_ name: HeaderName) -> String? {
        if let i = firstSlot(name) { return value(ofSlot: i) }
        var out: String?
        _ = withFirstAddedValue(name) { out = String(decoding: $0, as: UTF8.self) }
        return out
    }

    /// Every value for `name`, received ones first, then added ones.
    public func all(_ name: HeaderName) -> [String] {
        var out: [String] = []
        bytes.withUnsafeReadableBytes { all in
            for s in slots where !s.removed && s.nameLength == name.lowercased.count {
                if name.matches(UnsafeRawBufferPointer(rebasing: all[Int(s.nameStart)..<Int(s.nameStart + s.nameLength)])) {
                    out.append(String(decoding: UnsafeRawBufferPointer(rebasing: all[Int(s.valueStart)..<Int(s.valueStart + s.valueLength)]), as: UTF8.self))
                }
            }
        }
        forEachAdded { n, v, _ in
            if name.matches(n) { out.append(String(decoding: v, as: UTF8.self)) }
            return true
        }
        return out
    }

    /// Whether a stage added a line named `name`; a bit test for well-known names.
    @inlinable
    public func addedHas(_ name: HeaderName) -> Bool {
        if name.knownBit != 0 { return _addedKnown & name.knownBit != 0 }
        guard _addedKnown & Self.otherNameBit != 0 else { return false }
        var found = false
        forEachAdded { n, _, _ in
            if name.matches(n) { found = true; return false }
            return true
        }
        return found
    }

    public func contains(_ name: HeaderName) -> Bool {
        firstSlot(name) != nil || addedHas(name)
    }

    /// The added lines as strings, in order. For dry-run and tests.
    public var addedLines: [(name: String, value: String)] {
        var out: [(String, String)] = []
        forEachAdded { n, v, _ in
            out.append((String(decoding: n, as: UTF8.self), String(decoding: v, as: UTF8.self)))
            return true
        }
        return out
    }

    /// Every effective line as strings, in the order they would be written. For dry-run, tests
    /// and the SDK edge; not for the hot path.
    public var effective: [(name: String, value: String)] {
        var out: [(String, String)] = []
        forEachReceived { n, v in
            out.append((String(decoding: n, as: UTF8.self), String(decoding: v, as: UTF8.self)))
        }
        return out + addedLines
    }

    // MARK: editing

    /// Removes every line named `name`, received or added. Looks first and writes only on a
    /// match: a mutable access to a shared array would copy it even when nothing changes.
    public mutating func remove(_ name: HeaderName) {
        if let first = firstSlot(name) {
            slots[first].removed = true
            if first + 1 < slots.count {
                let n = name.lowercased.count
                let hits: [Int] = bytes.withUnsafeReadableBytes { all in
                    var hits: [Int] = []
                    for i in (first + 1)..<slots.count where !slots[i].removed && Int(slots[i].nameLength) == n {
                        let s = slots[i]
                        if name.matches(UnsafeRawBufferPointer(rebasing: all[Int(s.nameStart)..<Int(s.nameStart + s.nameLength)])) {
                            hits.append(i)
                        }
                    }
                    return hits
                }
                for i in hits { slots[i].removed = true }
            }
        }
        guard _addedCount > 0, name.knownBit == 0 || _addedKnown & name.knownBit != 0, addedHas(name) else { return }
        // Rare (a stage removing what an earlier one added): rebuild the added lines.
        var kept: [UInt8] = []
        var known: UInt32 = 0
        forEachAdded { n, _, line in
            if !name.matches(n) {
                kept.append(contentsOf: line)
                let bit = HeaderName.knownBit(ofLowercasedOrNot: n)
                known |= bit == 0 ? Self.otherNameBit : bit
            }
            return true
        }
        _addedStorage = kept
        _addedCount = kept.count
        _addedKnown = known
    }

    /// Replaces every line named `name` with one line.
    public mutating func set(_ name: HeaderName, _ value: String) {
        remove(name)
        add(name, value)
    }

    /// `set`, with the value as bytes (CR, LF and NUL become SP).
    public mutating func set(_ name: HeaderName, bytes value: UnsafeRawBufferPointer) {
        remove(name)
        add(name, bytes: value)
    }

    /// Adds a line, keeping the ones already there. A name that is not a token is dropped (it
    /// could not be written safely); config validation rejects such names before this.
    public mutating func add(_ name: HeaderName, _ value: String) {
        // A native string lends its bytes without a copy; `withUTF8` needs a mutable copy of the
        // string (a retain and release of its storage a call, three calls a proxied request).
        if value.utf8.withContiguousStorageIfAvailable({ add(name, bytes: UnsafeRawBufferPointer($0)) }) != nil { return }
        var v = value
        v.withUTF8 { add(name, bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Room for `needed` bytes of added lines, and more: a proxied request typically gets 4-8
    /// added lines (forwarding headers, filters), and a recycled array keeps its room for the
    /// next head.
    @inline(never)
    mutating func growAddedStorage(to needed: Int) {
        let size = max(needed, 256, 2 * _addedStorage.count)
        if _addedStorage.isEmpty {
            _addedStorage = [UInt8](repeating: 0, count: size)
        } else {
            _addedStorage.append(contentsOf: repeatElement(0, count: size - _addedStorage.count))
        }
    }

    /// Adds a line whose value is `bytes` (CR, LF and NUL become SP).
    public mutating func add(_ name: HeaderName, bytes value: UnsafeRawBufferPointer) {
        addLine(name, value, check: true)
    }

    /// Adds a line whose value the caller knows holds no CR, LF or NUL (a generated request id's
    /// hex digits): copied without looking at it. Not public: a value that broke that promise
    /// would split the head, so custom filters get the checked `add` only.
    @usableFromInline
    package mutating func add(_ name: HeaderName, cleanBytes value: UnsafeRawBufferPointer) {
        addLine(name, value, check: false)
    }

    /// `set` with `add(_:cleanBytes:)`; not public either.
    @usableFromInline
    package mutating func set(_ name: HeaderName, cleanBytes value: UnsafeRawBufferPointer) {
        remove(name)
        addLine(name, value, check: false)
    }

    @inline(__always)
    mutating func addLine(_ name: HeaderName, _ value: UnsafeRawBufferPointer, check: Bool) {
        guard name.isToken else { return }
        let nameLength = name.nameBytes.count
        let n = value.count
        let lineLength = nameLength + n + 4
        let start = _addedCount
        if start + lineLength > _addedStorage.count { growAddedStorage(to: start + lineLength) }
        // The line is written in place with raw copies: appending piece by piece went through
        // the generic, element-at-a-time path (~800 instructions a line, measured with callgrind).
        _addedStorage.withUnsafeMutableBytes { all in
            let p = all.baseAddress! + start
            name.nameBytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: nameLength) }
            p.storeBytes(of: 0x3A, toByteOffset: nameLength, as: UInt8.self)
            p.storeBytes(of: 0x20, toByteOffset: nameLength + 1, as: UInt8.self)
            let v = (p + nameLength + 2).assumingMemoryBound(to: UInt8.self)
            if n > 0 { UnsafeMutableRawPointer(v).copyMemory(from: value.baseAddress!, byteCount: n) }
            // Eight bytes at a time: a word with no byte below 0x0E (CR, LF and NUL are all below
            // it) is passed whole; byte by byte only from a word that has one, and at the end.
            var k = check ? 0 : n
            while k < n {
                if k + 8 <= n {
                    let w = UnsafeRawPointer(v + k).loadUnaligned(as: UInt64.self)
                    if (w &- 0x0E0E_0E0E_0E0E_0E0E) & ~w & 0x8080_8080_8080_8080 == 0 {
                        k += 8
                        continue
                    }
                }
                let c = v[k]
                if c < 0x0E && (c == 0x0D || c == 0x0A || c == 0) { v[k] = 0x20 }
                k += 1
            }
            v[n] = 0x0D
            v[n + 1] = 0x0A
        }
        _addedCount = start + lineLength
        _addedKnown |= name.knownBit == 0 ? Self.otherNameBit : name.knownBit
    }

    /// `add`, with a well-known name lent without a retain (`HeaderName.Lent`).
    @inlinable
    public mutating func add(_ name: Unmanaged<HeaderName>, _ value: String) {
        name._withUnsafeGuaranteedRef { add($0, value) }
    }

    /// `add(_:valueOfSlot:)`, with a well-known name lent without a retain.
    @inlinable
    public mutating func add(_ name: Unmanaged<HeaderName>, valueOfSlot i: Int) {
        name._withUnsafeGuaranteedRef { add($0, valueOfSlot: i) }
    }

    /// `firstSlot`, with a well-known name lent without a retain.
    @inlinable
    public func firstSlot(_ name: Unmanaged<HeaderName>) -> Int? {
        name._withUnsafeGuaranteedRef { firstSlot($0) }
    }

    /// Adds a line whose value is the value of received slot `i` (say, the Host as received).
    public mutating func add(_ name: HeaderName, valueOfSlot i: Int) {
        let b = bytes
        let s = slots[i]
        b.withUnsafeReadableBytes { all in
            add(name, bytes: UnsafeRawBufferPointer(rebasing: all[Int(s.valueStart)..<Int(s.valueStart + s.valueLength)]))
        }
    }
}

/// Header lines serialized once, `Name: value\r\n` each and checked as `add` checks them, for
/// heads that get the same lines again and again (a connection's forwarding lines, the proxy's
/// `Via`): `HeaderFields.add(_: HeaderLines)` adds them all with one copy.
public struct HeaderLines: Sendable {
    /// The lines are the first `byteCount` bytes (the array is the one they were written in).
    @usableFromInline let storage: [UInt8]
    public let byteCount: Int
    /// The `addedKnown` bits of the lines' names.
    public let knownBits: UInt32

    /// The lines `build` adds to empty fields; one allocation.
    public init(_ build: (inout HeaderFields) -> Void) {
        var f = HeaderFields()
        build(&f)
        knownBits = f.addedKnown
        byteCount = f.addedByteCount
        storage = f.takeStorage().added
    }

    public init(_ lines: [(HeaderName, String)]) {
        self.init { f in for (n, v) in lines { f.add(n, v) } }
    }

    public var bytes: [UInt8] { Array(storage[0..<byteCount]) }
}

extension HeaderFields {
    /// Adds lines serialized beforehand, after the ones already added.
    public mutating func add(_ lines: HeaderLines) {
        let n = lines.byteCount
        guard n > 0 else { return }
        let start = _addedCount
        if start + n > _addedStorage.count { growAddedStorage(to: start + n) }
        _addedStorage.withUnsafeMutableBytes { all in
            lines.storage.withUnsafeBytes { (all.baseAddress! + start).copyMemory(from: $0.baseAddress!, byteCount: n) }
        }
        _addedCount = start + n
        _addedKnown |= lines.knownBits
    }
}

extension StringProtocol {
    /// Trims the given ASCII characters from both ends.
    public func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
