extension Array {
    /// Empties the array and keeps its storage, as `removeAll(keepingCapacity: true)` does, but
    /// a short array element by element from the end: the standard library's version goes
    /// through the generic `replaceSubrange` (about 110 instructions a call, callgrind), and the
    /// hot path empties several short arrays a request (one to a few elements).
    @inlinable
    package mutating func removeAllKeepingStorage() {
        let n = count
        if n == 0 { return }
        if n <= 8 {
            for _ in 0..<n { removeLast() }
        } else {
            removeAll(keepingCapacity: true)
        }
    }
}
