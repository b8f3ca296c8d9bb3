package dev.rsheap.rig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.runner.Description;
import org.junit.runner.JUnitCore;
import org.junit.runner.Request;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;

/**
 * Runs JUnit 4 test classes and reports like Rust's libtest, so that {@code cargo xtask test}
 * counts the results with its other suites: a {@code test Class.method ... ok} (or
 * {@code FAILED}, {@code ignored}) line per test, the failures' traces, and the closing
 * {@code test result:} line. Then the time each test took, on lines of their own.
 *
 * <p>Usage: {@code LibtestRunner CLASS...}; exits 0 only if every test passed.
 */
public final class LibtestRunner {
    private LibtestRunner() {}

    /**
     * Runs the named classes, in order.
     *
     * @param args fully qualified names of JUnit 4 test classes
     * @throws ClassNotFoundException if a class is not on the class path
     */
    public static void main(String[] args) throws ClassNotFoundException {
        List<Class<?>> classes = new ArrayList<>();
        for (String name : args) {
            classes.add(Class.forName(name));
        }
        Request request = Request.classes(classes.toArray(new Class<?>[0]));
        System.out.println();
        System.out.println("running " + request.getRunner().testCount() + " tests");
        Listener listener = new Listener();
        JUnitCore core = new JUnitCore();
        core.addListener(listener);
        long start = System.nanoTime();
        Result result = core.run(request);
        double seconds = (System.nanoTime() - start) / 1e9;
        listener.summarize(result, seconds);
        System.out.flush();
        // Tests may leave threads behind; they must not keep the JVM up.
        System.exit(result.wasSuccessful() && listener.failed.isEmpty() ? 0 : 1);
    }

    /** libtest's name of a test: {@code SimpleClassName.method}. */
    private static String name(Description description) {
        Class<?> test = description.getTestClass();
        String owner = test != null ? test.getSimpleName() : description.getClassName();
        String method = description.getMethodName();
        return method != null ? owner + "." + method : owner;
    }

    private static final class Listener extends RunListener {
        /** Failures in order, by test name: the test's own and its class's set-up. */
        private final Map<String, Failure> failed = new LinkedHashMap<>();
        private final List<String> timings = new ArrayList<>();
        private int passed;
        private int ignored;
        private long started;
        private boolean failing;

        @Override
        public void testStarted(Description description) {
            started = System.nanoTime();
            failing = false;
        }

        @Override
        public void testFailure(Failure failure) {
            String name = name(failure.getDescription());
            if (failure.getDescription().getMethodName() == null) {
                // A class-level failure (@BeforeClass, @AfterClass): no test line of its own.
                System.out.println("test " + name + " ... FAILED");
            }
            failing = true;
            failed.putIfAbsent(name, failure);
        }

        @Override
        public void testAssumptionFailure(Failure failure) {
            failing = true;
            ignored++;
            System.out.println("test " + name(failure.getDescription()) + " ... ignored, "
                    + failure.getMessage());
        }

        @Override
        public void testIgnored(Description description) {
            ignored++;
            System.out.println("test " + name(description) + " ... ignored");
        }

        @Override
        public void testFinished(Description description) {
            double seconds = (System.nanoTime() - started) / 1e9;
            timings.add(String.format(Locale.ROOT, "  %7.2f s  %s", seconds, name(description)));
            String name = name(description);
            if (failed.containsKey(name)) {
                System.out.println("test " + name + " ... FAILED");
            } else if (!failing) {
                passed++;
                System.out.println("test " + name + " ... ok");
            }
        }

        void summarize(Result result, double seconds) {
            if (!failed.isEmpty()) {
                System.out.println();
                System.out.println("failures:");
                for (Map.Entry<String, Failure> entry : failed.entrySet()) {
                    System.out.println();
                    System.out.println("---- " + entry.getKey() + " ----");
                    System.out.println(entry.getValue().getTrace().trim());
                }
                System.out.println();
                System.out.println("failures:");
                for (String name : failed.keySet()) {
                    System.out.println("    " + name);
                }
            }
            System.out.println();
            System.out.println(String.format(Locale.ROOT,
                    "test result: %s. %d passed; %d failed; %d ignored; 0 measured; "
                            + "0 filtered out; finished in %.2fs",
                    failed.isEmpty() && result.wasSuccessful() ? "ok" : "FAILED",
                    passed, failed.size(), ignored, seconds));
            System.out.println();
            System.out.println("time per test:");
            for (String timing : timings) {
                System.out.println(timing);
            }
        }
    }
}
