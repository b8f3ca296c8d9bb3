package dev.rsheap;

import java.lang.ref.PhantomReference;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Reclaims what the program forgot: native state of objects that became unreachable without
 * being closed.
 *
 * <p>Each {@link Tracked} is a {@link PhantomReference} to the object whose native state it
 * knows (never the object itself, so that it cannot keep it reachable). When the collector
 * finds the object unreachable it queues the reference, and a daemon thread, {@code
 * rsheap-reclaimer}, calls {@link Tracked#reclaim()}. Phantom references work at every API
 * level and on every JVM, unlike {@code java.lang.ref.Cleaner} (Android 13 and later).
 */
final class Reclaimer {
    /** Where warnings about forgotten objects go (logcat on Android). */
    static final Logger LOG = Logger.getLogger("dev.rsheap");

    private static final ReferenceQueue<Object> QUEUE = new ReferenceQueue<>();
    /** The references not reclaimed yet: a phantom reference must itself stay reachable. */
    private static final Set<Tracked<?>> TRACKED = ConcurrentHashMap.newKeySet();

    static {
        Thread thread = new Thread(Reclaimer::run, "rsheap-reclaimer");
        thread.setDaemon(true);
        thread.start();
    }

    private Reclaimer() {}

    /** Native state to reclaim when {@code T} is collected. */
    abstract static class Tracked<T> extends PhantomReference<T> {
        Tracked(T referent) {
            super(referent, QUEUE);
            TRACKED.add(this);
        }

        /** Stops tracking: the object was closed, and there is nothing left to reclaim. */
        final void untrack() {
            TRACKED.remove(this);
            clear();
        }

        /** Reclaims the state, on the reclaimer's thread, once. */
        abstract void reclaim();
    }

    private static void run() {
        while (true) {
            Reference<?> reference;
            try {
                reference = QUEUE.remove();
            } catch (InterruptedException e) {
                continue;
            }
            // A reference untracked meanwhile (closed as it was collected) is left alone.
            if (reference instanceof Tracked && TRACKED.remove(reference)) {
                try {
                    ((Tracked<?>) reference).reclaim();
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "rsheap: reclaiming a forgotten object failed", e);
                }
            }
        }
    }
}
