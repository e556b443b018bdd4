// Validates AsyncAPI documents with the official parser (@asyncapi/parser):
//   node asyncapi-validate.mjs FILE...
// Prints every diagnostic; exits 1 when any is an error. DOCS_NODE_MODULES is the
// node_modules directory scripts/docs installs the parser into.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.DOCS_NODE_MODULES + '/');
const { Parser } = require('@asyncapi/parser');
const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
    const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
    const errors = diagnostics.filter((d) => d.severity === 0);
    for (const d of diagnostics) {
        const level = ['error', 'warning', 'info', 'hint'][d.severity] ?? 'note';
        console.log(`${file}: ${level}: ${d.message} at /${d.path.join('/')}`);
    }
    if (errors.length > 0 || !document) {
        failed = true;
        console.log(`${file}: INVALID (${errors.length} error(s))`);
    } else {
        console.log(`${file}: valid AsyncAPI ${document.version()}, ${document.channels().length} channel(s), ${document.operations().length} operation(s)`);
    }
}
process.exit(failed ? 1 : 0);
