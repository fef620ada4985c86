<?php
// What OpenConnector's MappingService::executeMapping (lib/Service/MappingService.php, commit c1d9a896)
// makes of inputs, rendered by real Twig. Reads {"mapping": {...}, "inputs": [...]} as JSON on stdin and
// writes the list of outputs as JSON. Run by tests/openconnector/regenerate_expected.py.
//
// Deliberately not declare(strict_types=1): MappingService has none either, so a mapping value that is
// not a string (false, 0) is coerced to a string when it is handed to renderTemplateString(string ...):
// `"featured": false` becomes "" and `"attachmentCount": 0` becomes "0", as in OpenConnector.

$autoload = getenv('TWIG_AUTOLOAD') ?: '/usr/share/php/Twig/autoload.php';
require $autoload;
date_default_timezone_set('UTC');

// adbario/php-dot-notation 3.3 (OpenConnector's Adbar\Dot), the parts executeMapping uses: written
// again here with the same rules (a key is first looked up whole, then split on '.').
final class DotArray
{
    public array $items;

    public function __construct(array $items = []) { $this->items = $items; }

    public function has($keys): bool
    {
        $keys = (array) $keys;
        if (!$this->items || $keys === []) {
            return false;
        }
        foreach ($keys as $key) {
            $items = $this->items;
            if (array_key_exists($key, $items)) {
                continue;
            }
            foreach (explode('.', (string) $key) as $segment) {
                if (!is_array($items) || !array_key_exists($segment, $items)) {
                    return false;
                }
                $items = $items[$segment];
            }
        }
        return true;
    }

    public function get($key)
    {
        if (array_key_exists($key, $this->items)) {
            return $this->items[$key];
        }
        if (strpos((string) $key, '.') === false) {
            return null;
        }
        $items = $this->items;
        foreach (explode('.', (string) $key) as $segment) {
            if (!is_array($items) || !array_key_exists($segment, $items)) {
                return null;
            }
            $items = $items[$segment];
        }
        return $items;
    }

    public function set($keys, $value): void
    {
        $items = &$this->items;
        foreach (explode('.', (string) $keys) as $key) {
            if (!isset($items[$key]) || !is_array($items[$key])) {
                $items[$key] = [];
            }
            $items = &$items[$key];
        }
        $items = $value;
    }

    public function delete($key): void
    {
        if (array_key_exists($key, $this->items)) {
            unset($this->items[$key]);
            return;
        }
        $items = &$this->items;
        $segments = explode('.', (string) $key);
        $last = array_pop($segments);
        foreach ($segments as $segment) {
            if (!isset($items[$segment]) || !is_array($items[$segment])) {
                return;
            }
            $items = &$items[$segment];
        }
        unset($items[$last]);
    }
}

function encodeArrayKeys(array $array, string $toReplace, string $replacement): array
{
    $result = [];
    foreach ($array as $key => $value) {
        $newKey = str_replace($toReplace, $replacement, (string) $key);
        if (is_array($value) && $value !== []) {
            $result[$newKey] = encodeArrayKeys($value, $toReplace, $replacement);
            continue;
        }
        $result[$newKey] = $value;
    }
    return $result;
}

function renderTemplateString(\Twig\Environment $twig, string $template, array $context): string
{
    return html_entity_decode($twig->createTemplate($template)->render($context));
}

function areAllArrayKeysNull(array $array): bool
{
    foreach ($array as $value) {
        if ($value !== null) {
            return false;
        }
    }
    return true;
}

// The casts these configurations use; any other is refused rather than guessed.
function handleCast(DotArray $dot, string $key, string $cast): void
{
    $value = $dot->get($key);
    if (str_starts_with($cast, 'unsetIfValue==')) {
        $unsetIfValue = substr($cast, 14);
        if ($value == $unsetIfValue || ($unsetIfValue === '' && empty($value)) || ($unsetIfValue === '' && $value === null)) {
            $dot->delete($key);
        }
        if ($unsetIfValue === '' && is_array($value) && areAllArrayKeysNull($value)) {
            $dot->delete($key);
        }
    } elseif ($cast === 'jsonToArray') {
        if (!is_array($value)) {
            $value = json_decode(html_entity_decode($value), true);
        }
    } elseif ($cast === 'string') {
        $value = (string) $value;
    } elseif ($cast === 'int' || $cast === 'integer') {
        $value = (int) $value;
    } else {
        fwrite(STDERR, "oracle.php: cast '$cast' is not written here\n");
        exit(2);
    }
    if ($dot->has($key)) {
        $dot->set($key, $value);
    }
}

function executeMapping(\Twig\Environment $twig, array $mapping, array $input): array
{
    $originalInput = $input;
    $input = encodeArrayKeys($input, '.', '&#46;');
    $dotArray = ($mapping['passThrough'] ?? false) ? new DotArray($input) : new DotArray();
    $dotInput = new DotArray($input);
    foreach ($mapping['mapping'] as $key => $value) {
        if ($dotInput->has($value)) {
            $dotArray->set($key, $dotInput->get($value));
            continue;
        }
        if (is_array($value)) {
            $dotArray->set($key, $value);
            continue;
        }
        $dotArray->set($key, renderTemplateString($twig, $value, $originalInput));
    }
    foreach ($mapping['unset'] ?? [] as $unset) {
        if ($dotArray->has($unset)) {
            $dotArray->delete($unset);
        }
    }
    foreach ($mapping['cast'] ?? [] as $key => $cast) {
        if ($dotArray->has($key) === false) {
            continue;
        }
        foreach (is_array($cast) ? $cast : explode(',', $cast) as $singleCast) {
            handleCast($dotArray, $key, $singleCast);
        }
    }
    $output = encodeArrayKeys($dotArray->items, '&#46;', '.');
    $keys = array_keys($output);
    if (count($keys) === 1 && $keys[0] === '#') {
        $root = $output['#'];
        $output = $root === null ? [] : (is_array($root) ? $root : [$root]);
    }
    return $output;
}

$request = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
// OpenConnector's Environment: an ArrayLoader and Twig's defaults (autoescape 'html'), whose escaping
// renderTemplateString undoes with html_entity_decode. Its MappingExtension (b64enc, b64dec,
// json_decode, slugify, executeMapping, callSource, ...) is not used by the mappings this oracle runs.
$twig = new \Twig\Environment(new \Twig\Loader\ArrayLoader());
$outputs = [];
foreach ($request['inputs'] as $input) {
    $outputs[] = executeMapping($twig, $request['mapping'], $input);
}
echo json_encode(['twig' => \Twig\Environment::VERSION, 'outputs' => $outputs], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION);
