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

    public init(nameStart: Int, nameLength: Int, valueStart: Int, valueLength: Int) {
        self.nameStart = UInt32(nameStart)
        self.nameLength = UInt32(nameLength)
        self.valueStart = UInt32(valueStart)
        self.valueLength = UInt32(valueLength)
        self.removed = false
    }
}

/// Header lines as a view over the bytes received, plus the edits stages made.
///
/// Lookups compare bytes against a prepared `HeaderName`; a value becomes a `String` only when
/// asked for. Edits are recorded and applied once, when the engine writes the head
/// (`HTTP1Writer`, which also keeps added values from splitting the head), so an untouched line
/// is copied byte for byte.
public struct HeaderFields: Sendable {
    /// The received head (or an empty buffer for a head built locally).
    public var bytes: ByteBuffer
    public var slots: [HeaderSlot]
    /// Lines added by stages, in order, written after the received lines that remain.
    public private(set) var added: [(name: HeaderName, value: String)]
    /// The `knownBit`s of the names in `added`: asking whether a well-known name was added costs
    /// a bit test instead of a walk over `added`.
    public private(set) var addedKnown: UInt32 = 0

    public init(bytes: ByteBuffer, slots: [HeaderSlot]) {
        self.bytes = bytes
        self.slots = slots
        self.added = []
    }

    public init() {
        self.bytes = ByteBuffer()
        self.slots = []
        self.added = []
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

    /// Index of the first received, not removed line named `name`.
    @inlinable
    public func firstSlot(_ name: HeaderName) -> Int? {
        bytes.withUnsafeReadableBytes { all in
            for i in slots.indices where !slots[i].removed {
                let s = slots[i]
                guard s.nameLength == name.lowercased.count else { continue }
                if name.matches(UnsafeRawBufferPointer(rebasing: all[Int(s.nameStart)..<Int(s.nameStart + s.nameLength)])) {
                    return i
                }
            }
            return nil
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

    /// The first value for `name`, seeing stage edits: an added line wins over a received one
    /// only when the received ones were removed (as `set` does).
    public func first(_ name: HeaderName) -> String? {
        if let i = firstSlot(name) { return value(ofSlot: i) }
        for a in added where a.name == name { return a.value }
        return nil
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
        for a in added where a.name == name { out.append(a.value) }
        return out
    }

    /// Whether a stage added a line named `name`; a bit test for well-known names.
    @inlinable
    public func addedHas(_ name: HeaderName) -> Bool {
        if name.knownBit != 0 { return addedKnown & name.knownBit != 0 }
        return added.contains { $0.name == name }
    }

    public func contains(_ name: HeaderName) -> Bool {
        firstSlot(name) != nil || added.contains { $0.name == name }
    }

    /// Every effective line as strings, in the order they would be written. For dry-run, tests
    /// and the SDK edge; not for the hot path.
    public var effective: [(name: String, value: String)] {
        var out: [(String, String)] = []
        forEachReceived { n, v in
            out.append((String(decoding: n, as: UTF8.self), String(decoding: v, as: UTF8.self)))
        }
        for a in added { out.append((a.name.name, a.value)) }
        return out
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
        if !added.isEmpty && (name.knownBit == 0 || addedKnown & name.knownBit != 0) && added.contains(where: { $0.name == name }) {
            added.removeAll { $0.name == name }
            addedKnown &= ~name.knownBit
        }
    }

    /// Replaces every line named `name` with one line.
    public mutating func set(_ name: HeaderName, _ value: String) {
        remove(name)
        add(name, value)
    }

    /// Adds a line, keeping the ones already there.
    public mutating func add(_ name: HeaderName, _ value: String) {
        // A proxied request typically gets 4-8 added lines (forwarding headers, filters): one
        // allocation instead of growing 1, 2, 4, 8.
        if added.capacity == 0 { added.reserveCapacity(8) }
        added.append((name, value))
        addedKnown |= name.knownBit
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
