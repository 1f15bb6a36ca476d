/// Debug builds only: weak references to the objects one event loop makes per connection and
/// per request, so tests can prove that closed connections free every one of them (issue 6: a
/// handler <-> context cycle kept ~5 KiB per closed connection alive). A weak reference is
/// enough to see a leak and needs no `deinit` on the hot types. Release builds compile the calls
/// away; a debug server tracks only when a test switched it on.
final class ObjectTracker {
    enum Kind: String, CaseIterable, Sendable {
        case clientHandler, channelContext, channel, exchange, requestContext, upstreamConnection
    }

    private struct Ref {
        weak var object: AnyObject?
        let kind: Kind
    }

    private var refs: [Ref] = []
    /// How many of each kind were made (a reused exchange is not made again).
    private(set) var made: [Kind: Int] = [:]

    func track(_ object: AnyObject, _ kind: Kind) {
        if refs.count >= 4096 { refs.removeAll { $0.object == nil } }
        refs.append(Ref(object: object, kind: kind))
        made[kind, default: 0] += 1
    }

    /// Objects still alive, by kind (kinds with none are left out).
    func alive() -> [Kind: Int] {
        refs.removeAll { $0.object == nil }
        var out: [Kind: Int] = [:]
        for r in refs { out[r.kind, default: 0] += 1 }
        return out
    }
}

extension LoopState {
    /// Records `object` when a test switched tracking on; nothing in release builds.
    @inline(__always)
    func track(_ object: @autoclosure () -> AnyObject, _ kind: ObjectTracker.Kind) {
        #if DEBUG
        tracker?.track(object(), kind)
        #endif
    }
}
