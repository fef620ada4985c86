<?php
// Render templates with real Twig the way OpenConnector's MappingService does (lib/Service/MappingService.php):
// a default Environment (autoescape "html", not strict) on an ArrayLoader, then html_entity_decode; PHP's
// timezone UTC as Nextcloud sets it. Reads [{"template": ..., "context": {...}}, ...] as JSON on stdin and
// writes [{"ok": true, "output": ...} | {"ok": false, "error": ...}, ...].
// executeMapping and generateUuid are stand-ins with the same results as the Python side's test stand-ins.
require_once getenv('TWIG_AUTOLOAD') ?: '/usr/share/php/Twig/autoload.php';

date_default_timezone_set('UTC');
$twig = new \Twig\Environment(new \Twig\Loader\ArrayLoader());
$twig->addFunction(new \Twig\TwigFunction('executeMapping', function ($mapping, array $input, bool $list = false): array {
    return ['mapping' => $mapping, 'input' => $input, 'list' => $list];
}));
$twig->addFunction(new \Twig\TwigFunction('generateUuid', fn () => '00000000-0000-4000-8000-000000000000'));
$twig->addFilter(new \Twig\TwigFilter('b64enc', fn (string $input): string => base64_encode($input)));
$twig->addFilter(new \Twig\TwigFilter('b64dec', fn (string $input): string => base64_decode($input)));
$twig->addFilter(new \Twig\TwigFilter('slugify', function (string $text): string {
    // OpenConnector's MappingRuntime::createSlug.
    $slug = str_replace([' ', '_'], '-', strtolower($text));
    $slug = preg_replace('/[^a-z0-9\-]/', '', $slug);
    return trim(preg_replace('/-+/', '-', $slug), '-');
}));
$twig->addFilter(new \Twig\TwigFilter('json_decode', fn (string $input): array => json_decode($input, true)));

$cases = json_decode(file_get_contents('php://stdin'), true);
$results = [];
foreach ($cases as $case) {
    try {
        $output = $twig->createTemplate($case['template'])->render($case['context'] ?: []);
        $results[] = ['ok' => true, 'output' => html_entity_decode($output)];
    } catch (\Throwable $e) {
        $results[] = ['ok' => false, 'error' => get_class($e).': '.$e->getMessage()];
    }
}
echo json_encode($results, JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
